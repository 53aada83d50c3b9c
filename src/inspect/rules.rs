//! The catalog of built-in detection rules and the switch that turns some off for evaluation.
//!
//! Every rule a detector can report has a [`RuleInfo`]: its id (what findings and audit logs
//! carry), its class, and the corpus sources whose misses it was written for. A rule that follows
//! from the attack language alone (a shell command substitution, a SQL tautology after a quote)
//! names no source. The corpus evaluation reads the catalog for its leave-one-source-out view:
//! each attack source's recall counted only by rules that were not written for it
//! ([`RuleFilter`]). The agent itself always runs every rule.

use crate::model::AuditTag;

/// One built-in rule.
#[derive(Debug, Clone, Copy)]
pub struct RuleInfo {
    /// The rule id reported in findings (`cmdi-chain`, `sqli-union`, ...).
    pub id: &'static str,
    /// The class the rule belongs to.
    pub class: AuditTag,
    /// Corpus sources (`source` field of `../shared/corpus/*.jsonl`) whose misses the rule was
    /// written for; empty when it models the language rather than a list.
    pub written_for: &'static [&'static str],
}

impl RuleInfo {
    /// A rule that models the language and names no source.
    pub const fn language(id: &'static str, class: AuditTag) -> Self {
        RuleInfo {
            id,
            class,
            written_for: &[],
        }
    }

    /// A rule written for the misses of `sources`.
    pub const fn written_for(
        id: &'static str,
        class: AuditTag,
        sources: &'static [&'static str],
    ) -> Self {
        RuleInfo {
            id,
            class,
            written_for: sources,
        }
    }
}

/// Every built-in rule of every detector.
pub fn catalog() -> impl Iterator<Item = &'static RuleInfo> {
    super::xss::RULES
        .iter()
        .chain(super::sqli::RULES)
        .chain(super::cmdi::RULES)
}

/// Looks a rule up by id.
pub fn rule_info(id: &str) -> Option<&'static RuleInfo> {
    catalog().find(|r| r.id == id)
}

/// Which rules may fire. The agent uses [`RuleFilter::ALL`]; the corpus evaluation switches off
/// the rules written for one source to measure that source by the others.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleFilter<'a> {
    off: &'a [&'static str],
}

impl<'a> RuleFilter<'a> {
    /// Every rule may fire.
    pub const ALL: RuleFilter<'static> = RuleFilter { off: &[] };

    /// Every rule but those in `off`.
    pub const fn without(off: &'a [&'static str]) -> Self {
        RuleFilter { off }
    }

    /// May `rule` fire? (One length test in the agent, where nothing is off.)
    #[inline]
    pub fn allows(self, rule: &str) -> bool {
        self.off.is_empty() || !self.off.contains(&rule)
    }

    /// `Some(rule)` when it may fire: the detectors' way of reporting a match.
    #[inline]
    pub fn fire(self, rule: &'static str) -> Option<&'static str> {
        self.allows(rule).then_some(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_unique_and_carry_their_class_prefix() {
        let mut seen = std::collections::HashSet::new();
        for rule in catalog() {
            assert!(seen.insert(rule.id), "{} listed twice", rule.id);
            let prefix = match rule.class {
                AuditTag::Xss => "xss-",
                AuditTag::Sqli => "sqli-",
                AuditTag::CmdInjection => "cmdi-",
                other => panic!("{} has class {other:?}", rule.id),
            };
            assert!(rule.id.starts_with(prefix), "{} is not {prefix}*", rule.id);
        }
    }

    #[test]
    fn a_filter_switches_off_only_what_it_names() {
        let off = ["cmdi-chain"];
        let filter = RuleFilter::without(&off);
        assert!(!filter.allows("cmdi-chain"));
        assert!(filter.allows("cmdi-substitution"));
        assert_eq!(filter.fire("cmdi-chain"), None);
        assert_eq!(RuleFilter::ALL.fire("cmdi-chain"), Some("cmdi-chain"));
    }
}
