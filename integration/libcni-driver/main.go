// rcni-libcni: a minimal runtime built on the real libcni (Debian's
// golang-github-appc-cni-dev), used by the integration tests as cnitool would be.
//
//	rcni-libcni validate|add|check|del CONFDIR NETWORK CONTAINERID NETNS IFNAME CACHEDIR
//
// Plugins are looked up in $CNI_PATH (colon-separated). The ADD result is printed as
// JSON; errors go to stderr with exit status 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	if len(os.Args) != 8 {
		fmt.Fprintln(os.Stderr, "usage: rcni-libcni validate|add|check|del CONFDIR NETWORK CONTAINERID NETNS IFNAME CACHEDIR")
		os.Exit(2)
	}
	verb, confDir, network := os.Args[1], os.Args[2], os.Args[3]
	rt := &libcni.RuntimeConf{
		ContainerID: os.Args[4],
		NetNS:       os.Args[5],
		IfName:      os.Args[6],
		CacheDir:    os.Args[7],
	}
	if args := os.Getenv("RCNI_CAP_ARGS"); args != "" {
		if err := json.Unmarshal([]byte(args), &rt.CapabilityArgs); err != nil {
			fail("RCNI_CAP_ARGS: %v", err)
		}
	}
	list, err := libcni.LoadConfList(confDir, network)
	if err != nil {
		fail("loading %s from %s: %v", network, confDir, err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(strings.Split(os.Getenv("CNI_PATH"), ":"), rt.CacheDir, nil)
	ctx := context.Background()
	switch verb {
	case "validate":
		caps, err := cni.ValidateNetworkList(ctx, list)
		if err != nil {
			fail("validate: %v", err)
		}
		fmt.Println(strings.Join(caps, ","))
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail("add: %v", err)
		}
		if err := res.Print(); err != nil {
			fail("printing result: %v", err)
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail("check: %v", err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail("del: %v", err)
		}
	default:
		fail("unknown verb %q", verb)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
