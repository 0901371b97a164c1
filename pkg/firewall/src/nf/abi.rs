//! The numbers of the nf_tables netlink interface (`linux/netfilter/nf_tables.h`,
//! `linux/netfilter/nfnetlink.h`) that rule lookups, deletions and writes use.

/// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*`, and the batch delimiters.
pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub(crate) const NFT_NEWRULE: u16 = NFNL_SUBSYS_NFTABLES << 8 | 6;
pub(crate) const NFT_GETRULE: u16 = NFNL_SUBSYS_NFTABLES << 8 | 7;
pub(crate) const NFT_DELRULE: u16 = NFNL_SUBSYS_NFTABLES << 8 | 8;
pub(crate) const NFT_DELCHAIN: u16 = NFNL_SUBSYS_NFTABLES << 8 | 5;
pub(crate) const NFNL_MSG_BATCH_BEGIN: u16 = 16;
pub(crate) const NFNL_MSG_BATCH_END: u16 = 17;
/// `NFNL_BATCH_GENID`: the generation a batch was decided at.
pub(crate) const NFNL_BATCH_GENID: u16 = 1;
pub(crate) const NFT_GETGEN: u16 = NFNL_SUBSYS_NFTABLES << 8 | 16;
pub(crate) const NFT_NEWGEN: u16 = NFNL_SUBSYS_NFTABLES << 8 | 15;
pub(crate) const NFTA_GEN_ID: u16 = 1;
/// `enum nft_rule_attributes`.
pub(crate) const NFTA_RULE_TABLE: u16 = 1;
pub(crate) const NFTA_RULE_CHAIN: u16 = 2;
pub(crate) const NFTA_RULE_HANDLE: u16 = 3;
pub(crate) const NFTA_RULE_USERDATA: u16 = 7;
pub(crate) const NFTA_RULE_EXPRESSIONS: u16 = 4;
/// `enum nft_chain_attributes`.
pub(crate) const NFTA_CHAIN_TABLE: u16 = 1;
pub(crate) const NFTA_CHAIN_NAME: u16 = 3;
/// Expression lists: `NFTA_LIST_ELEM` holding `NFTA_EXPR_NAME` and `NFTA_EXPR_DATA`.
pub(crate) const NFTA_LIST_ELEM: u16 = 1;
pub(crate) const NFTA_EXPR_NAME: u16 = 1;
pub(crate) const NFTA_EXPR_DATA: u16 = 2;
/// An `immediate` expression's data: a verdict with its code and target chain.
pub(crate) const NFTA_IMMEDIATE_DATA: u16 = 2;
pub(crate) const NFTA_DATA_VERDICT: u16 = 2;
pub(crate) const NFTA_VERDICT_CODE: u16 = 1;
pub(crate) const NFTA_VERDICT_CHAIN: u16 = 2;
/// `payload` and `cmp` expressions.
pub(crate) const NFTA_PAYLOAD_BASE: u16 = 2;
pub(crate) const NFTA_PAYLOAD_OFFSET: u16 = 3;
pub(crate) const NFTA_PAYLOAD_LEN: u16 = 4;
pub(crate) const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub(crate) const NFTA_CMP_OP: u16 = 2;
pub(crate) const NFTA_CMP_DATA: u16 = 3;
pub(crate) const NFT_CMP_EQ: u32 = 0;
pub(crate) const NFTA_DATA_VALUE: u16 = 1;
/// `NF_ACCEPT`.
pub(crate) const NF_ACCEPT: i32 = 1;
/// `NFT_JUMP` (-3) and `NFT_GOTO` (-4), big-endian on the wire.
pub(crate) const NFT_JUMP: i32 = -3;
pub(crate) const NFT_GOTO: i32 = -4;
/// Writing rules: flags, chain and rule attributes, expression registers and keys.
pub(crate) const NFT_NEWCHAIN: u16 = NFNL_SUBSYS_NFTABLES << 8 | 3;
pub(crate) const NLM_F_APPEND: u16 = 0x800;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NFTA_RULE_COMPAT: u16 = 5;
pub(crate) const NFTA_RULE_COMPAT_PROTO: u16 = 1;
pub(crate) const NFTA_RULE_COMPAT_FLAGS: u16 = 2;
/// Register 1 (`NFT_REG_1`) for loads and compares, 0 for the verdict.
pub(crate) const REG_1: u32 = 1;
pub(crate) const REG_VERDICT: u32 = 0;
pub(crate) const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
pub(crate) const NFT_META_MARK: u32 = 3;
pub(crate) const NFT_META_L4PROTO: u32 = 16;
