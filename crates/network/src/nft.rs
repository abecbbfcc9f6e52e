//! berth's firewall: all of a daemon's nftables state lives in ONE `ip` table (default
//! `berth`; tests pass their own name so parallel daemons never touch each other's rules).
//! Rules are written as typed JSON with the `nftables` crate and applied by `nft -j -f -` in one
//! atomic transaction per call; they are read back with `nft -j list table`.
//!
//! Layout of the table (the skeleton is written when a write finds part of it missing; adding
//! even an existing chain costs a kernel transaction of ~14 ms, a rule ~1.5 ms):
//! ```text
//! chain prerouting  (nat, prerouting, dstnat)  fib daddr type local jump port_dnat
//! chain output      (nat, output, -100)        fib daddr type local jump port_dnat
//! chain postrouting (nat, postrouting, srcnat) jump net_post
//! chain forward     (filter, forward, 0)       jump net_internal; ct status dnat accept; jump net_isolation
//! chain input       (filter, input, 0)         from @bridges to 127.0.0.0/8: only established/related
//! chain port_dnat      published ports, one DNAT rule per mapping     comment "port <owner> ..."
//! chain net_post       masquerade/hairpin per network                 comment "net <bridge> <subnet>"
//! chain net_internal   drops for --internal networks                  comment "net <bridge> <subnet>"
//! chain net_isolation  drop forwarding between two berth bridges      comment "net <bridge> <subnet>"
//! set   bridges        (ifname) every berth bridge
//! ```
//! Everything of one network or one owner is found again by its comment and deleted by handle,
//! so the state survives a daemon restart without any file of its own. Published ports are in
//! `ports.rs`.

use std::borrow::Cow;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{
    CTFamily, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload,
    PayloadField, Prefix, CT,
};
use nftables::schema::{
    Chain, Element, FlushObject, NfCmd, NfListObject, Rule, Set, SetType, SetTypeValue, Table,
};
use nftables::stmt::{JumpTarget, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

/// The nftables family of berth's table (berth networks are IPv4).
pub(crate) const FAMILY: NfFamily = NfFamily::IP;
const FAMILY_NAME: &str = "ip";
pub(crate) const CHAIN_PORT_DNAT: &str = "port_dnat";
const CHAIN_NET_POST: &str = "net_post";
const CHAIN_NET_INTERNAL: &str = "net_internal";
const CHAIN_NET_ISOLATION: &str = "net_isolation";
const SET_BRIDGES: &str = "bridges";
const NFT: &str = "nft";
/// The chains and set every complete table has.
const SKELETON_OBJECTS: [&str; 10] = [
    "prerouting",
    "output",
    "postrouting",
    "forward",
    "input",
    CHAIN_PORT_DNAT,
    CHAIN_NET_POST,
    CHAIN_NET_INTERNAL,
    CHAIN_NET_ISOLATION,
    SET_BRIDGES,
];

/// Serialises the read-modify-write cycles (list, decide, apply) of every firewall of this
/// process: a port checked free must still be free when its rule is added.
pub(crate) static LOCK: Mutex<()> = Mutex::new(());

/// Why the firewall could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("cannot run {program}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("nft {action} on table ip {table} failed: {stderr}")]
    Nft {
        action: String,
        table: String,
        stderr: String,
    },
    #[error("nft -j list table ip {table}: unexpected output")]
    Output {
        table: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode nftables commands for table ip {table}")]
    Encode {
        table: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid bridge name {0:?} (1 to 15 characters, no '/', blanks or quotes)")]
    BridgeName(String),
}

/// One rule of berth's table as read back from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListedRule {
    pub chain: String,
    pub handle: u32,
    pub comment: Option<String>,
}

/// What berth's table holds (only what berth needs to find its rules again).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Listing {
    pub rules: Vec<ListedRule>,
    pub bridges: Vec<String>,
    /// Names of the chains and sets present.
    pub objects: Vec<String>,
}

impl Listing {
    /// Parses the output of `nft -j list table ip <table>`.
    pub(crate) fn parse(json: &str) -> Result<Listing, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_str(json)?;
        let mut listing = Listing::default();
        let objects = value
            .get("nftables")
            .and_then(|o| o.as_array())
            .cloned()
            .unwrap_or_default();
        for object in objects {
            if let Some(rule) = object.get("rule") {
                let chain = rule
                    .get("chain")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default();
                let Some(handle) = rule.get("handle").and_then(|h| h.as_u64()) else {
                    continue;
                };
                listing.rules.push(ListedRule {
                    chain: chain.to_string(),
                    handle: u32::try_from(handle).unwrap_or(u32::MAX),
                    comment: rule
                        .get("comment")
                        .and_then(|c| c.as_str())
                        .map(str::to_string),
                });
            } else if let Some(chain) = object.get("chain") {
                let name = chain
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or_default();
                listing.objects.push(name.to_string());
            } else if let Some(set) = object.get("set") {
                let name = set.get("name").and_then(|n| n.as_str()).unwrap_or_default();
                listing.objects.push(name.to_string());
                if set.get("name").and_then(|n| n.as_str()) != Some(SET_BRIDGES) {
                    continue;
                }
                let elems = match set.get("elem") {
                    Some(serde_json::Value::Array(items)) => items.clone(),
                    Some(item) => vec![item.clone()],
                    None => Vec::new(),
                };
                listing
                    .bridges
                    .extend(elems.iter().filter_map(|e| e.as_str()).map(str::to_string));
            }
        }
        Ok(listing)
    }

    /// Rules whose comment's first two words are `kind` and `name` ("net br0", "port <id>").
    pub(crate) fn tagged<'a>(
        &'a self,
        kind: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a ListedRule> + 'a {
        self.rules.iter().filter(move |r| {
            let mut words = r.comment.as_deref().unwrap_or_default().split_whitespace();
            words.next() == Some(kind) && words.next() == Some(name)
        })
    }
}

/// berth's nftables table. Cheap to construct; every method talks to the kernel through `nft`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firewall {
    table: String,
}

impl Firewall {
    /// `table`: nftables table name (family `ip`), "berth" for a normal daemon; tests pass their
    /// own so parallel test daemons never touch each other's rules.
    pub fn new(table: &str) -> Firewall {
        Firewall {
            table: table.to_string(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Rules for a bridge network: masquerade traffic from `subnet` leaving through another
    /// interface (unless `internal`); if `internal`, drop forwarded traffic between the bridge and
    /// any other interface; isolation: drop forwarding between two different berth bridges
    /// (docker's DOCKER-ISOLATION), except connections to published ports. Also the two
    /// masquerades published ports need on this bridge: hairpin (a container reaching a published
    /// port through a host address, DNATed back into the same bridge) and 127.0.0.0/8 → bridge.
    /// Idempotent: calling it again replaces the network's rules.
    pub fn add_network(
        &self,
        bridge: &str,
        subnet: Ipv4Net,
        internal: bool,
    ) -> Result<(), FirewallError> {
        check_bridge(bridge)?;
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let listing = self.list()?.unwrap_or_default();
        let mut batch = Batch::new();
        self.ensure_skeleton(&listing, &mut batch);
        for rule in listing.tagged("net", bridge) {
            batch.delete(NfListObject::Rule(
                self.rule_handle(&rule.chain, rule.handle),
            ));
        }
        let subnet = subnet.trunc();
        let tag = format!("net {bridge} {subnet}");
        let bridge_s = || Expression::String(Cow::Owned(bridge.to_string()));
        if !internal {
            batch.add(self.rule(
                CHAIN_NET_POST,
                &tag,
                vec![
                    matches(payload("ip", "saddr"), prefix(subnet)),
                    match_op(meta(MetaKey::Oifname), bridge_s(), Operator::NEQ),
                    Statement::Masquerade(None),
                ],
            ));
        }
        batch.add(self.rule(
            CHAIN_NET_POST,
            &tag,
            vec![
                matches(meta(MetaKey::Oifname), bridge_s()),
                matches(payload("ip", "saddr"), prefix(subnet)),
                match_op(
                    ct("status"),
                    Expression::String("dnat".into()),
                    Operator::IN,
                ),
                Statement::Masquerade(None),
            ],
        ));
        batch.add(self.rule(
            CHAIN_NET_POST,
            &tag,
            vec![
                matches(meta(MetaKey::Oifname), bridge_s()),
                matches(
                    payload("ip", "saddr"),
                    prefix("127.0.0.0/8".parse().expect("a valid prefix")),
                ),
                Statement::Masquerade(None),
            ],
        ));
        if internal {
            batch.add(self.rule(
                CHAIN_NET_INTERNAL,
                &tag,
                vec![
                    matches(meta(MetaKey::Iifname), bridge_s()),
                    match_op(meta(MetaKey::Oifname), bridge_s(), Operator::NEQ),
                    Statement::Drop(None),
                ],
            ));
            batch.add(self.rule(
                CHAIN_NET_INTERNAL,
                &tag,
                vec![
                    matches(meta(MetaKey::Oifname), bridge_s()),
                    match_op(meta(MetaKey::Iifname), bridge_s(), Operator::NEQ),
                    Statement::Drop(None),
                ],
            ));
        }
        batch.add(self.rule(
            CHAIN_NET_ISOLATION,
            &tag,
            vec![
                matches(meta(MetaKey::Iifname), bridge_s()),
                match_op(meta(MetaKey::Oifname), bridge_s(), Operator::NEQ),
                matches(
                    meta(MetaKey::Oifname),
                    Expression::String(format!("@{SET_BRIDGES}").into()),
                ),
                Statement::Drop(None),
            ],
        ));
        batch.add(NfListObject::Element(Element {
            family: FAMILY,
            table: Cow::Borrowed(&self.table),
            name: SET_BRIDGES.into(),
            elem: Cow::Owned(vec![bridge_s()]),
        }));
        self.apply(batch, &format!("add network {bridge}"))
    }

    /// Removes exactly what add_network added for this bridge. Idempotent (absent = Ok).
    pub fn remove_network(&self, bridge: &str) -> Result<(), FirewallError> {
        check_bridge(bridge)?;
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let Some(listing) = self.list()? else {
            return Ok(());
        };
        let mut batch = Batch::new();
        let mut changed = false;
        for rule in listing.tagged("net", bridge) {
            batch.delete(NfListObject::Rule(
                self.rule_handle(&rule.chain, rule.handle),
            ));
            changed = true;
        }
        if listing.bridges.iter().any(|b| b == bridge) {
            batch.delete(NfListObject::Element(Element {
                family: FAMILY,
                table: Cow::Borrowed(&self.table),
                name: SET_BRIDGES.into(),
                elem: Cow::Owned(vec![Expression::String(bridge.to_string().into())]),
            }));
            changed = true;
        }
        if !changed {
            return Ok(());
        }
        self.apply(batch, &format!("remove network {bridge}"))
    }

    /// Deletes the whole table (daemon teardown in tests / `berthd --cleanup`). Absent = Ok.
    pub fn remove_all(&self) -> Result<(), FirewallError> {
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if self.list()?.is_none() {
            return Ok(());
        }
        let mut batch = Batch::new();
        batch.delete(NfListObject::Table(self.table_obj()));
        self.apply(batch, "delete table")
    }

    /// Reads the table back; `None` when it does not exist.
    pub(crate) fn list(&self) -> Result<Option<Listing>, FirewallError> {
        let output = Command::new(NFT)
            .args(["-j", "list", "table", FAMILY_NAME, &self.table])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| FirewallError::Spawn {
                program: NFT,
                source,
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(FirewallError::Nft {
                action: "list".into(),
                table: self.table.clone(),
                stderr: one_line(&stderr),
            });
        }
        let json = String::from_utf8_lossy(&output.stdout);
        Listing::parse(&json)
            .map(Some)
            .map_err(|source| FirewallError::Output {
                table: self.table.clone(),
                source,
            })
    }

    /// Applies `batch` as one transaction (`nft -j -f -`): all of it or nothing.
    pub(crate) fn apply(&self, batch: Batch<'_>, action: &str) -> Result<(), FirewallError> {
        let payload =
            serde_json::to_vec(&batch.to_nftables()).map_err(|source| FirewallError::Encode {
                table: self.table.clone(),
                source,
            })?;
        let mut child = Command::new(NFT)
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| FirewallError::Spawn {
                program: NFT,
                source,
            })?;
        let written = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(&payload));
        let output = child
            .wait_with_output()
            .map_err(|source| FirewallError::Spawn {
                program: NFT,
                source,
            })?;
        if let Some(Err(source)) = written {
            if output.status.success() {
                return Err(FirewallError::Spawn {
                    program: NFT,
                    source,
                });
            }
        }
        if !output.status.success() {
            return Err(FirewallError::Nft {
                action: action.to_string(),
                table: self.table.clone(),
                stderr: one_line(&String::from_utf8_lossy(&output.stderr)),
            });
        }
        Ok(())
    }

    fn table_obj(&self) -> Table<'_> {
        Table {
            family: FAMILY,
            name: Cow::Borrowed(&self.table),
            handle: None,
        }
    }

    /// Adds the table's skeleton to `batch` unless `listing` shows all of it is there.
    pub(crate) fn ensure_skeleton<'a>(&'a self, listing: &Listing, batch: &mut Batch<'a>) {
        let complete = SKELETON_OBJECTS
            .iter()
            .all(|name| listing.objects.iter().any(|o| o == name));
        if !complete {
            self.skeleton(batch);
        }
    }

    /// Adds the table, its chains and set, and the base chains' fixed rules. Base chains hold
    /// nothing else, so flushing and refilling them makes this idempotent.
    pub(crate) fn skeleton<'a>(&'a self, batch: &mut Batch<'a>) {
        batch.add(NfListObject::Table(self.table_obj()));
        let base = [
            ("prerouting", NfChainType::NAT, NfHook::Prerouting, -100),
            ("output", NfChainType::NAT, NfHook::Output, -100),
            ("postrouting", NfChainType::NAT, NfHook::Postrouting, 100),
            ("forward", NfChainType::Filter, NfHook::Forward, 0),
            ("input", NfChainType::Filter, NfHook::Input, 0),
        ];
        for (name, kind, hook, prio) in base {
            batch.add(NfListObject::Chain(Chain {
                family: FAMILY,
                table: Cow::Borrowed(&self.table),
                name: name.into(),
                _type: Some(kind),
                hook: Some(hook),
                prio: Some(prio),
                policy: Some(NfChainPolicy::Accept),
                ..Chain::default()
            }));
        }
        for name in [
            CHAIN_PORT_DNAT,
            CHAIN_NET_POST,
            CHAIN_NET_INTERNAL,
            CHAIN_NET_ISOLATION,
        ] {
            batch.add(NfListObject::Chain(self.chain(name)));
        }
        batch.add(NfListObject::Set(Box::new(Set {
            family: FAMILY,
            table: Cow::Borrowed(&self.table),
            name: SET_BRIDGES.into(),
            set_type: SetTypeValue::Single(SetType::Ifname),
            ..Set::default()
        })));
        for (name, _, _, _) in base {
            batch.add_cmd(NfCmd::Flush(FlushObject::Chain(self.chain(name))));
        }
        let local = || {
            matches(
                Expression::Named(NamedExpression::Fib(Fib {
                    result: FibResult::Type,
                    flags: [FibFlag::Daddr].into_iter().collect(),
                })),
                Expression::String("local".into()),
            )
        };
        for chain in ["prerouting", "output"] {
            batch.add(self.rule_untagged(chain, vec![local(), jump(CHAIN_PORT_DNAT)]));
        }
        batch.add(self.rule_untagged("postrouting", vec![jump(CHAIN_NET_POST)]));
        batch.add(self.rule_untagged("forward", vec![jump(CHAIN_NET_INTERNAL)]));
        batch.add(self.rule_untagged(
            "forward",
            vec![
                match_op(
                    ct("status"),
                    Expression::String("dnat".into()),
                    Operator::IN,
                ),
                Statement::Accept(None),
            ],
        ));
        batch.add(self.rule_untagged("forward", vec![jump(CHAIN_NET_ISOLATION)]));
        // route_localnet on a bridge (published ports on 127.0.0.1) would let containers reach
        // the host's loopback-only services (CVE-2020-8558): only the replies of connections
        // the host made (through a published port) may come in from a bridge to 127.0.0.0/8.
        let from_bridge_to_loopback = || {
            vec![
                matches(
                    meta(MetaKey::Iifname),
                    Expression::String(format!("@{SET_BRIDGES}").into()),
                ),
                matches(
                    payload("ip", "daddr"),
                    prefix("127.0.0.0/8".parse().expect("a valid prefix")),
                ),
            ]
        };
        let mut established = from_bridge_to_loopback();
        established.push(match_op(
            ct("state"),
            Expression::List(vec![
                Expression::String("established".into()),
                Expression::String("related".into()),
            ]),
            Operator::IN,
        ));
        established.push(Statement::Accept(None));
        batch.add(self.rule_untagged("input", established));
        let mut drop = from_bridge_to_loopback();
        drop.push(Statement::Drop(None));
        batch.add(self.rule_untagged("input", drop));
    }

    fn chain(&self, name: &str) -> Chain<'_> {
        Chain {
            family: FAMILY,
            table: Cow::Borrowed(&self.table),
            name: Cow::Owned(name.to_string()),
            ..Chain::default()
        }
    }

    fn rule_untagged(&self, chain: &str, expr: Vec<Statement<'static>>) -> NfListObject<'_> {
        NfListObject::Rule(Rule {
            family: FAMILY,
            table: Cow::Borrowed(&self.table),
            chain: Cow::Owned(chain.to_string()),
            expr: Cow::Owned(expr),
            ..Rule::default()
        })
    }

    /// A rule carrying `comment`, the tag it is found again by.
    pub(crate) fn rule(
        &self,
        chain: &str,
        comment: &str,
        expr: Vec<Statement<'static>>,
    ) -> NfListObject<'_> {
        NfListObject::Rule(Rule {
            family: FAMILY,
            table: Cow::Borrowed(&self.table),
            chain: Cow::Owned(chain.to_string()),
            expr: Cow::Owned(expr),
            comment: Some(Cow::Owned(comment.to_string())),
            ..Rule::default()
        })
    }

    /// A rule addressed by handle, for `delete`.
    pub(crate) fn rule_handle(&self, chain: &str, handle: u32) -> Rule<'_> {
        Rule {
            family: FAMILY,
            table: Cow::Borrowed(&self.table),
            chain: Cow::Owned(chain.to_string()),
            handle: Some(handle),
            ..Rule::default()
        }
    }
}

/// Interface names as the kernel takes them (IFNAMSIZ), and safe inside a comment tag.
pub(crate) fn check_bridge(bridge: &str) -> Result<(), FirewallError> {
    let ok = !bridge.is_empty()
        && bridge.len() <= 15
        && !bridge
            .chars()
            .any(|c| c == '/' || c == '"' || c == '\'' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(FirewallError::BridgeName(bridge.to_string()))
    }
}

/// nft's error output on one line (it prints the offending command over several).
fn one_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == ' '))
        .collect();
    if lines.is_empty() {
        "no error output".to_string()
    } else {
        lines.join(" | ")
    }
}

pub(crate) fn matches(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    match_op(left, right, Operator::EQ)
}

pub(crate) fn match_op(
    left: Expression<'static>,
    right: Expression<'static>,
    op: Operator,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

pub(crate) fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

pub(crate) fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: key.into(),
        family: None::<CTFamily>,
        dir: None,
    }))
}

fn prefix(net: Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(net.network().to_string().into())),
        len: u32::from(net.prefix_len()),
    }))
}

fn jump(chain: &str) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: Cow::Owned(chain.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_bridges_from_a_listing() {
        let json = r#"{"nftables":[{"metainfo":{"version":"1.0.6"}},
            {"table":{"family":"ip","name":"t","handle":1}},
            {"set":{"family":"ip","name":"bridges","table":"t","type":"ifname","handle":6,"elem":["br0","br1"]}},
            {"set":{"family":"ip","name":"other","table":"t","type":"ifname","handle":7,"elem":"x"}},
            {"rule":{"family":"ip","table":"t","chain":"net_post","handle":9,"comment":"net br0 10.1.0.0/24","expr":[]}},
            {"rule":{"family":"ip","table":"t","chain":"forward","handle":10,"expr":[]}}]}"#;
        let listing = Listing::parse(json).expect("parses");
        assert_eq!(listing.bridges, vec!["br0", "br1"]);
        assert_eq!(listing.rules.len(), 2);
        let tagged: Vec<_> = listing.tagged("net", "br0").map(|r| r.handle).collect();
        assert_eq!(tagged, vec![9]);
        assert_eq!(listing.tagged("net", "br").count(), 0);
    }

    #[test]
    fn the_skeleton_is_written_only_when_part_of_it_is_missing() {
        let fw = Firewall::new("t");
        let mut listing = Listing {
            objects: SKELETON_OBJECTS.iter().map(|o| o.to_string()).collect(),
            ..Listing::default()
        };
        let mut batch = Batch::new();
        fw.ensure_skeleton(&listing, &mut batch);
        assert_eq!(batch, Batch::new(), "complete table: nothing to add");
        listing.objects.retain(|o| o != CHAIN_NET_POST);
        fw.ensure_skeleton(&listing, &mut batch);
        assert_ne!(
            batch,
            Batch::new(),
            "a missing chain: the skeleton is written"
        );
    }

    #[test]
    fn a_single_set_element_is_not_an_array() {
        let json = r#"{"nftables":[{"set":{"name":"bridges","elem":"br0"}}]}"#;
        assert_eq!(Listing::parse(json).expect("parses").bridges, vec!["br0"]);
    }

    #[test]
    fn bridge_names_are_checked() {
        assert!(check_bridge("berth0").is_ok());
        assert!(check_bridge("br-0123456789ab").is_ok());
        for bad in ["", "a/b", "has space", "sixteen-chars-xx", "quo\"te"] {
            assert!(check_bridge(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn nft_errors_fold_onto_one_line() {
        let stderr = "Error: Could not process rule: No such file or directory\nlist table ip x\n           ^^^^\n";
        assert_eq!(
            one_line(stderr),
            "Error: Could not process rule: No such file or directory | list table ip x"
        );
    }

    #[test]
    fn the_skeleton_encodes_as_nft_json() {
        let fw = Firewall::new("t");
        let mut batch = Batch::new();
        fw.skeleton(&mut batch);
        let json = serde_json::to_value(batch.to_nftables()).expect("encodes");
        let text = json.to_string();
        assert!(
            text.contains(r#""fib":{"flags":["daddr"],"result":"type"}"#)
                || text.contains(r#""fib":{"result":"type","flags":["daddr"]}"#),
            "{text}"
        );
        assert!(text.contains(r#""flush":{"chain""#), "{text}");
    }
}
