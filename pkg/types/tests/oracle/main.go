// Command oracle prints what a Go reference plugin prints for a prevResult: it parses the
// result as version.ParsePrevResult does (the config's version injected when the result
// has none), converts it to the current type (types100.NewResultFromResult, what plugins
// such as tuning do) and prints it in the target version (types.PrintResult).
//
// Usage: oracle CONFIG_VERSION TARGET_VERSION < result.json
// On failure it prints "ERROR: <message>" and exits 1.
//
// Built against containernetworking/cni at 3f51e88 (spec 1.1.0) by ../fixtures/regen.sh.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

func fail(err error) {
	fmt.Printf("ERROR: %v", err)
	os.Exit(1)
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	conf := types.PluginConf{CNIVersion: os.Args[1]}
	if err := json.Unmarshal(data, &conf.RawPrevResult); err != nil {
		fail(err)
	}
	if err := version.ParsePrevResult(&conf); err != nil {
		fail(err)
	}
	current, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		fail(err)
	}
	if err := types.PrintResult(current, os.Args[2]); err != nil {
		fail(err)
	}
}
