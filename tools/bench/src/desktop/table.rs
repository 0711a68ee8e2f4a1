//! The report's desktop table: each figure as the median over the repetitions, Tether beside
//! MeshCentral.

use crate::report::{MESHCENTRAL, Row, RunResult, TETHER};
use crate::stats::median_of;

use super::{DesktopPoint, SceneKind, ScenePoint};

/// Rows for every desktop figure; empty when no run measured the desktop.
pub(crate) fn rows(runs: &[RunResult]) -> Vec<Row> {
    let points = |system: &str| -> Vec<&DesktopPoint> {
        runs.iter()
            .filter(|r| r.system == system)
            .filter_map(|r| r.desktop.as_ref())
            .collect()
    };
    let (tether, meshcentral) = (points(TETHER), points(MESHCENTRAL));
    if tether.is_empty() && meshcentral.is_empty() {
        return Vec::new();
    }
    let mut rows = Vec::new();
    let mut add = |metric: String, pick: &dyn Fn(&DesktopPoint) -> Option<f64>| {
        rows.push(Row {
            metric,
            tether: median_of(tether.iter().map(|p| pick(p))),
            meshcentral: median_of(meshcentral.iter().map(|p| pick(p))),
        });
    };
    add("Agent RSS online, no session (MiB)".into(), &|p| {
        p.agent_idle_rss_mib
    });
    add("Agent RSS 15 s after the viewer left (MiB)".into(), &|p| {
        p.agent_after_rss_mib
    });
    add("Click to pixel p50 (ms)".into(), &|p| p.click_ms_p50);
    add("Click to pixel p99 (ms)".into(), &|p| p.click_ms_p99);
    type Pick = fn(&ScenePoint) -> Option<f64>;
    let figures: [(&str, Pick); 7] = [
        ("KiB/s to the viewer", |s| Some(s.kib_s)),
        ("screen updates/s (higher is smoother)", |s| {
            Some(s.updates_s)
        }),
        ("agent CPU (% of one core)", |s| s.agent_cpu_pct),
        ("agent peak RSS (MiB)", |s| s.agent_peak_rss_mib),
        ("server CPU (% of one core)", |s| s.server_cpu_pct),
        ("SSIM of the still picture (higher is better)", |s| s.ssim),
        ("PSNR of the still picture (dB, higher is better)", |s| {
            s.psnr_db.filter(|db| db.is_finite())
        }),
    ];
    for kind in SceneKind::ALL {
        for (name, pick) in figures {
            add(format!("Desktop, {}: {name}", kind.label()), &|p| {
                p.scenes.iter().find(|s| s.scene == kind).and_then(pick)
            });
        }
        add(
            format!("Desktop, {}: agent CPU ms per screen update", kind.label()),
            &|p| {
                let s = p.scenes.iter().find(|s| s.scene == kind)?;
                let cpu = s.agent_cpu_pct?;
                (s.updates_s > 0.0).then(|| cpu * 10.0 / s.updates_s)
            },
        );
    }
    rows
}
