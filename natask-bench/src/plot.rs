//! PNG plots with plotters' bitmap backend. Text needs a TrueType font:
//! it is read at run time (ab_glyph, no font library), and without one the
//! plots are skipped with a notice.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::scenarios::Latencies;

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers the first font found as `sans-serif`; false if none.
pub(crate) fn load_font() -> bool {
    let path = std::env::var("NATASK_BENCH_FONT").ok();
    let candidates = path.iter().map(String::as_str).chain(FONTS.iter().copied());
    for candidate in candidates {
        if let Ok(bytes) = std::fs::read(candidate) {
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

const NATASK: RGBColor = RGBColor(0xd9, 0x48, 0x1c);
const RAW: RGBColor = RGBColor(0x1f, 0x5f, 0xa8);

/// Tasks/s against handler concurrency, natask and raw.
pub(crate) fn throughput(points: &[(usize, f64, f64)], file: &Path) -> PlotResult {
    let root = BitMapBackend::new(file, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = points.iter().map(|p| p.1.max(p.2)).fold(0.0, f64::max) * 1.15;
    let max_c = points.iter().map(|p| p.0).max().unwrap_or(256) as f64 * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "processing a backlog: tasks/s by handler concurrency",
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d((0.7f64..max_c).log_scale(), 0f64..top.max(1.0))?;
    chart
        .configure_mesh()
        .x_desc("concurrent handlers (log scale)")
        .y_desc("tasks per second")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
        .label_style(("sans-serif", 16))
        .draw()?;
    for (name, color, pick) in [("natask (defaults)", NATASK, 1), ("raw async-nats", RAW, 2)] {
        let series: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.0 as f64, if pick == 1 { p.1 } else { p.2 }))
            .collect();
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(3)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(
            series
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 5, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 18))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Cumulative distribution of enqueue → handler-start latency.
pub(crate) fn latency(all: &[Latencies], file: &Path) -> PlotResult {
    let root = BitMapBackend::new(file, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let values = all.iter().flat_map(|l| l.natask.iter().chain(&l.raw));
    let (lo, hi) = values.fold((u64::MAX, 0), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let lo = (lo.max(1) as f64 / 1e6) * 0.8;
    let hi = (hi.max(2) as f64 / 1e6) * 1.25;
    let mut chart = ChartBuilder::on(&root)
        .caption("end to end: enqueue → handler start", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..100f64)?;
    chart
        .configure_mesh()
        .x_desc("latency, ms (log scale)")
        .y_desc("% of tasks at or below")
        .x_label_formatter(&|x| {
            if *x >= 1.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        })
        .label_style(("sans-serif", 16))
        .draw()?;
    for l in all {
        for (side, color, data, dashed) in [
            ("natask (defaults)", NATASK, &l.natask, l.rate > 1_000),
            ("raw", RAW, &l.raw, l.rate > 1_000),
        ] {
            if data.is_empty() {
                continue;
            }
            let step = (data.len() / 600).max(1);
            let points: Vec<(f64, f64)> = data
                .iter()
                .enumerate()
                .filter(|(i, _)| i % step == 0 || *i == data.len() - 1)
                .map(|(i, &v)| {
                    (
                        (v.max(1) as f64) / 1e6,
                        100.0 * (i + 1) as f64 / data.len() as f64,
                    )
                })
                .collect();
            let style = if dashed {
                color.mix(0.55).stroke_width(3)
            } else {
                color.stroke_width(3)
            };
            chart
                .draw_series(LineSeries::new(points, style))?
                .label(format!(
                    "{side}, {}/s{}",
                    l.rate,
                    if dashed { " (lighter)" } else { "" }
                ))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 18))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
