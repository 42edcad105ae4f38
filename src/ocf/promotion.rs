//! Promotion scores: what a promotable agent tells Pacemaker about where to promote.

use super::agent::Ctx;
use crate::sys::cluster::{Cluster, ScoreOf};

/// Pacemaker treats anything beyond this as infinity.
pub const MAX_SCORE: i64 = 1_000_000;

pub fn clamp(score: i64) -> i64 {
    score.clamp(-MAX_SCORE, MAX_SCORE)
}

/// Sets this instance's promotion score on this node. Outside a cluster (ocf-tester, a
/// manual run) there is nobody to tell: the failure is logged, never fatal.
pub fn set_score(cluster: &dyn Cluster, ctx: &Ctx, score: i64) -> bool {
    let s = clamp(score);
    if s != score {
        ctx.log
            .warn(&format!("promotion score {score} clamped to {s}"));
    }
    report(
        ctx,
        cluster.promotion_score(here(ctx), Some(s), ctx.deadline.instant()),
        &format!("set promotion score {s}"),
    )
}

/// Removes this instance's promotion score on this node; same failure rule as [`set_score`].
pub fn clear_score(cluster: &dyn Cluster, ctx: &Ctx) -> bool {
    report(
        ctx,
        cluster.promotion_score(here(ctx), None, ctx.deadline.instant()),
        "remove promotion score",
    )
}

/// This instance on the node Pacemaker runs the action on.
fn here<'a>(ctx: &'a Ctx) -> ScoreOf<'a> {
    ScoreOf {
        instance: ctx.env.instance_base(),
        node: ctx.env.meta.on_node.as_deref(),
    }
}

fn report(ctx: &Ctx, r: crate::sys::SysResult<()>, what: &str) -> bool {
    match r {
        Ok(()) => {
            ctx.log.debug(what);
            true
        }
        Err(e) => {
            ctx.log
                .warn(&format!("could not {what} (not in a cluster?): {e}"));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocf::{action::Action, env::OcfEnv, log::Logger};
    use crate::sys::fake::FakeCluster;
    use std::time::Duration;

    #[test]
    fn scores_are_clamped_and_failures_not_fatal() {
        let env = OcfEnv::from_pairs(&[("OCF_RESOURCE_INSTANCE", "pg:1")]);
        let log = Logger::silent();
        let ctx = Ctx::new(&env, Action::Monitor, Duration::from_secs(5), &log);
        let c = FakeCluster::default();
        assert!(set_score(&c, &ctx, 5_000_000));
        assert!(clear_score(&c, &ctx));
        assert_eq!(
            *c.scores.borrow(),
            vec![
                ("pg".to_string(), Some(MAX_SCORE)),
                ("pg".to_string(), None)
            ]
        );
        c.fail.set(true);
        assert!(!set_score(&c, &ctx, -7));
        assert!(log
            .messages()
            .iter()
            .any(|m| m.contains("not in a cluster")));
        assert_eq!(clamp(-2_000_000), -MAX_SCORE);
    }
}
