//! The measurements, each on a freshly (warm) started server so one does not disturb the next:
//! MeshCentral, for instance, remembers agents that reconnect often and treats them differently.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::loadgen::{self, Options};
use crate::procs;
use crate::report::{AgentPoint, IdlePoint, StormPoint};
use crate::server::{Running, ServerSpec, Web};
use crate::stats::{median, percentile};

/// RSS is sampled this many times, this far apart, and the median kept (a GC may run meanwhile).
const RSS_SAMPLES: usize = 3;
const RSS_EVERY: Duration = Duration::from_secs(1);
/// Storm agents stay connected this long after the last one is due, so all are held at once.
const STORM_EXTRA_HOLD_S: u64 = 5;

pub(crate) struct Settings {
    pub loadgen: PathBuf,
    pub logs: PathBuf,
    /// Quiet time after a start, and after the agents are online, before sampling.
    pub settle: Duration,
    pub web_samples: u32,
    /// Connections per second while filling the server for the RSS points.
    pub ramp_rate: f64,
    pub storm_agents: u32,
    pub small_keys: bool,
}

/// Median resident memory of the server's process tree over a few samples, in kB.
pub(crate) async fn sample_rss_kb(pid: u32) -> Option<f64> {
    let mut samples = Vec::with_capacity(RSS_SAMPLES);
    for i in 0..RSS_SAMPLES {
        if i > 0 {
            tokio::time::sleep(RSS_EVERY).await;
        }
        if let Some(kb) = procs::tree_rss_kb(pid) {
            samples.push(kb as f64);
        }
    }
    median(&samples)
}

/// Warm start time, idle memory, then the login page and the login round trip, one request at a
/// time on a kept-alive connection.
pub(crate) async fn idle_and_web(
    spec: &ServerSpec,
    web: &Web,
    settings: &Settings,
) -> anyhow::Result<IdlePoint> {
    let mut running = spec.start(web).await?;
    let result = idle_and_web_on(&running, spec, web, settings).await;
    running.guard.stop().await;
    result
}

async fn idle_and_web_on(
    running: &Running,
    spec: &ServerSpec,
    web: &Web,
    settings: &Settings,
) -> anyhow::Result<IdlePoint> {
    tokio::time::sleep(settings.settle).await;
    let pid = running.guard.pid();
    let idle_rss_kb = sample_rss_kb(pid).await;
    let processes = procs::tree_size(pid);
    let page = format!("{}/", spec.base_url);
    let mut page_ms = Vec::new();
    for _ in 0..settings.web_samples {
        let started = Instant::now();
        web.status(&page).await?;
        page_ms.push(millis(started.elapsed()));
    }
    let mut login_ms = Vec::new();
    let mut login_ok = true;
    for _ in 0..settings.web_samples {
        let started = Instant::now();
        login_ok &= spec.login(web).await?;
        login_ms.push(millis(started.elapsed()));
    }
    Ok(IdlePoint {
        warm_start_s: running.ready_after.as_secs_f64(),
        idle_rss_kb,
        processes,
        page_ms_p50: median(&page_ms),
        page_ms_p99: percentile(&page_ms, 99.0),
        login_ms_p50: median(&login_ms),
        login_ok,
    })
}

/// `agents` simulated agents connected and idle: the server's memory before and after.
pub(crate) async fn agents_point(
    spec: &ServerSpec,
    web: &Web,
    agents: u32,
    settings: &Settings,
) -> anyhow::Result<AgentPoint> {
    let mut running = spec.start(web).await?;
    let result = agents_on(&running, spec, agents, settings).await;
    running.guard.stop().await;
    result
}

async fn agents_on(
    running: &Running,
    spec: &ServerSpec,
    agents: u32,
    settings: &Settings,
) -> anyhow::Result<AgentPoint> {
    tokio::time::sleep(settings.settle).await;
    let pid = running.guard.pid();
    let baseline_rss_kb = sample_rss_kb(pid).await;
    let options = Options {
        binary: &settings.loadgen,
        msh: &spec.msh,
        agents,
        rate: settings.ramp_rate,
        hold: None,
        small_keys: settings.small_keys,
        log: settings.logs.join(format!(
            "loadgen-{}-hold-{agents}.log",
            spec.kind.name().to_lowercase()
        )),
        reconnect: false,
        key_offset: 0,
    };
    let mut holding = loadgen::start(&options)?;
    let settled = holding.wait_settled(agents, settings.ramp_rate).await;
    let rss_kb = match settled {
        Ok(_) => {
            tokio::time::sleep(settings.settle).await;
            sample_rss_kb(pid).await
        }
        Err(_) => None,
    };
    let summary = holding.finish().await;
    settled?;
    let summary = summary?;
    let per_agent_kb = match (baseline_rss_kb, rss_kb) {
        (Some(before), Some(after)) if summary.online > 0 => {
            Some((after - before) / summary.online as f64)
        }
        _ => None,
    };
    Ok(AgentPoint {
        agents,
        online: summary.online,
        failed: summary.failed,
        failures: summary.failures,
        baseline_rss_kb,
        rss_kb,
        per_agent_kb,
        connect_ms_p50: summary.connect_ms_p50,
        connect_ms_p99: summary.connect_ms_p99,
    })
}

/// A connect storm: `storm_agents` agents due at `rate` per second, all staying connected.
pub(crate) async fn storm_point(
    spec: &ServerSpec,
    web: &Web,
    rate: f64,
    settings: &Settings,
) -> anyhow::Result<StormPoint> {
    let mut running = spec.start(web).await?;
    tokio::time::sleep(settings.settle).await;
    let agents = settings.storm_agents;
    let ramp_s = f64::from(agents) / rate;
    let hold = ramp_s.ceil() as u64 + STORM_EXTRA_HOLD_S;
    let options = Options {
        binary: &settings.loadgen,
        msh: &spec.msh,
        agents,
        rate,
        hold: Some(hold),
        small_keys: settings.small_keys,
        log: settings.logs.join(format!(
            "loadgen-{}-storm-{rate}.log",
            spec.kind.name().to_lowercase()
        )),
        reconnect: false,
        key_offset: 0,
    };
    let result = match loadgen::start(&options) {
        Ok(run) => {
            // Key generation (first run only) + ramp + slowest connect + hold + closing.
            let limit = Duration::from_secs(3600 + 2 * hold + 200);
            run.complete(limit).await
        }
        Err(e) => Err(e),
    };
    running.guard.stop().await;
    let summary = result?;
    Ok(StormPoint {
        rate,
        agents,
        authenticated: summary.authenticated,
        failed: summary.failed,
        failures: summary.failures,
        accepted_per_s: accepted_per_second(
            summary.authenticated,
            agents,
            rate,
            summary.connect_ms_max,
        ),
        connect_ms_p50: summary.connect_ms_p50,
        connect_ms_p99: summary.connect_ms_p99,
        connect_ms_max: summary.connect_ms_max,
    })
}

/// Handshakes completed per second over the storm: the last agent was due at `(n-1)/rate` s and
/// none took longer than the slowest connect, so all were done by then. When the server keeps up
/// this is about the offered rate; when it does not, connects queue and the figure drops.
pub(crate) fn accepted_per_second(
    authenticated: usize,
    agents: u32,
    rate: f64,
    connect_ms_max: Option<f64>,
) -> Option<f64> {
    let slowest_s = connect_ms_max? / 1000.0;
    let span = f64::from(agents.saturating_sub(1)) / rate + slowest_s;
    (span > 0.0 && authenticated > 0).then(|| authenticated as f64 / span)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_rate_is_the_offered_rate_when_connects_are_quick() {
        // 1000 agents at 100/s: the last is due at 9.99 s; a 10 ms connect.
        let rate = accepted_per_second(1000, 1000, 100.0, Some(10.0)).unwrap();
        assert!((rate - 100.0).abs() < 0.1, "{rate}");
    }

    #[test]
    fn accepted_rate_drops_when_connects_queue() {
        // Offered 1000/s, but the slowest waited 9 s: about 100/s got through.
        let rate = accepted_per_second(1000, 1000, 1000.0, Some(9_000.0)).unwrap();
        assert!((rate - 100.0).abs() < 1.0, "{rate}");
        assert_eq!(accepted_per_second(0, 1000, 1000.0, Some(1.0)), None);
        assert_eq!(accepted_per_second(5, 10, 10.0, None), None);
    }
}
