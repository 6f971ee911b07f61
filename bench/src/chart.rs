//! The query path's latency percentiles against offered load, as an SVG
//! chart (linked from the README).

use std::path::Path;

use plotters::prelude::*;

use crate::load::Run;

pub fn latency_versus_load(runs: &[Run], path: &Path) -> anyhow::Result<()> {
    let points = |f: fn(&Run) -> f64| -> Vec<(f64, f64)> {
        runs.iter()
            .filter_map(|r| Some((r.offered_rps? / 1000.0, f(r).max(0.01))))
            .collect()
    };
    let series = [
        ("p50", points(|r| r.p50_ms), BLUE),
        ("p99", points(|r| r.p99_ms), RED),
        ("p99.9", points(|r| r.p999_ms), MAGENTA),
    ];
    let max_x = runs
        .iter()
        .filter_map(|r| r.offered_rps)
        .fold(1.0, f64::max)
        / 1000.0;
    let max_y = series
        .iter()
        .flat_map(|(_, p, _)| p.iter().map(|(_, y)| *y))
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "GET /v1/products/{id}: latency vs offered load (open loop, latency-corrected)",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x * 1.05, (0.01..max_y * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("offered load (thousand requests/s)")
        .y_desc("latency (ms, log scale)")
        .draw()?;
    for (name, data, color) in series {
        chart
            .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(data.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_is_an_svg_with_every_percentile() {
        let runs: Vec<Run> = [10_000.0, 20_000.0, 30_000.0]
            .iter()
            .enumerate()
            .map(|(i, &rate)| Run {
                offered_rps: Some(rate),
                p50_ms: 0.2 * (i + 1) as f64,
                p99_ms: 0.9 * (i + 1) as f64,
                p999_ms: 2.0 * (i + 1) as f64,
                ..Run::default()
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.svg");
        latency_versus_load(&runs, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        for label in ["p50", "p99", "p99.9", "offered load"] {
            assert!(svg.contains(label), "no {label} in the chart");
        }
    }
}
