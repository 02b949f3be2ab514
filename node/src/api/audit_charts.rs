//! The regulator's charts, drawn on the server as SVG (plotters; no script, no font files:
//! text is left to the viewer's fonts) from an [`Activity`]: the same figures the JSON and
//! CSV carry, one line per series. Figures are integers until here; the drawing alone uses
//! floats, to place points.

use std::collections::BTreeMap;

use plotters::prelude::*;
use tally_contracts::InstitutionId;

use super::audit_activity::Activity;
use tally_wire::money;

/// The charts the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    /// Money movements per bucket, one line per currency.
    Payments,
    /// Their volume per bucket in major units, one line per currency.
    Volume,
    /// Each institution's net interbank flow accumulated from the range's start.
    Flows,
    /// Remittance volume per corridor, in the debited currency's major units.
    Corridors,
    /// Blocks and transactions per bucket.
    Blocks,
    /// From a block's proposal to its commit on this node (on the audit node: its lag),
    /// the median and the largest per bucket, in seconds.
    Latency,
}

impl Chart {
    pub const ALL: [Chart; 6] = [
        Chart::Payments,
        Chart::Volume,
        Chart::Flows,
        Chart::Corridors,
        Chart::Blocks,
        Chart::Latency,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Chart::Payments => "payments",
            Chart::Volume => "volume",
            Chart::Flows => "flows",
            Chart::Corridors => "corridors",
            Chart::Blocks => "blocks",
            Chart::Latency => "latency",
        }
    }

    pub fn parse(name: &str) -> Option<Chart> {
        Chart::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// One line: its label and its points (bucket start in ms, value).
struct Series {
    label: String,
    points: Vec<(u64, f64)>,
}

/// Minor units as major units, for placing a point.
fn major(minor: f64, currency: &str) -> f64 {
    let decimals = money::currency(currency)
        .ok()
        .and_then(|c| money::exponent(c).ok())
        .unwrap_or(0);
    minor / 10f64.powi(i32::try_from(decimals).unwrap_or(0))
}

fn grouped<K: Ord>(rows: impl Iterator<Item = (K, String, u64, f64)>) -> Vec<Series> {
    let mut by: BTreeMap<K, Series> = BTreeMap::new();
    for (key, label, x, y) in rows {
        by.entry(key)
            .or_insert_with(|| Series {
                label,
                points: Vec::new(),
            })
            .points
            .push((x, y));
    }
    by.into_values().collect()
}

fn series(chart: Chart, a: &Activity, names: &BTreeMap<InstitutionId, String>) -> Vec<Series> {
    match chart {
        Chart::Payments | Chart::Volume => {
            // Summed over kinds: one point per bucket and currency.
            let mut sums: BTreeMap<(String, u64), (u64, u128)> = BTreeMap::new();
            for p in &a.payments {
                let sum = sums.entry((p.currency.clone(), p.start_ms)).or_default();
                sum.0 = sum.0.saturating_add(p.count);
                sum.1 = sum.1.saturating_add(p.volume);
            }
            grouped(sums.into_iter().map(|((currency, x), (count, volume))| {
                let y = if chart == Chart::Payments {
                    count as f64
                } else {
                    major(volume as f64, &currency)
                };
                (currency.clone(), currency, x, y)
            }))
        }
        Chart::Flows => grouped(a.flows.iter().map(|f| {
            let name = names
                .get(&f.institution)
                .cloned()
                .unwrap_or_else(|| format!("institution {}", f.institution.0));
            (
                (f.currency.clone(), f.institution),
                format!("{name} {}", f.currency),
                f.start_ms,
                major(f.cumulative as f64, &f.currency),
            )
        })),
        Chart::Corridors => grouped(a.corridors.iter().map(|c| {
            (
                (c.from.clone(), c.to.clone()),
                format!("{}→{}", c.from, c.to),
                c.start_ms,
                major(c.debited as f64, &c.from),
            )
        })),
        Chart::Blocks => {
            let blocks = a.blocks.iter().map(|b| (b.start_ms, b.blocks as f64));
            let txs = a.blocks.iter().map(|b| (b.start_ms, b.transactions as f64));
            vec![
                Series {
                    label: "blocks".into(),
                    points: blocks.collect(),
                },
                Series {
                    label: "transactions".into(),
                    points: txs.collect(),
                },
            ]
        }
        Chart::Latency => {
            let seconds = |ms: Option<u64>| ms.map(|ms| ms as f64 / 1000.0);
            let median = a
                .blocks
                .iter()
                .filter_map(|b| Some((b.start_ms, seconds(b.lag_ms_median)?)));
            let max = a
                .blocks
                .iter()
                .filter_map(|b| Some((b.start_ms, seconds(b.lag_ms_max)?)));
            vec![
                Series {
                    label: "median".into(),
                    points: median.collect(),
                },
                Series {
                    label: "largest".into(),
                    points: max.collect(),
                },
            ]
        }
    }
}

fn titles(chart: Chart, bucket: &str) -> (String, &'static str) {
    match chart {
        Chart::Payments => (format!("Money movements per {bucket}"), "count"),
        Chart::Volume => (format!("Volume per {bucket}"), "major units"),
        Chart::Flows => (
            "Net interbank flow since the range's start".into(),
            "major units",
        ),
        Chart::Corridors => (
            format!("Remittances per {bucket}, by corridor"),
            "major units debited",
        ),
        Chart::Blocks => (format!("Blocks and transactions per {bucket}"), "count"),
        Chart::Latency => (
            format!("Proposal to commit on this node, per {bucket}"),
            "seconds",
        ),
    }
}

/// "HH:MM" of a block time, UTC.
fn clock(ms: u64) -> String {
    let minutes = ms / 60_000 % 1_440;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The chart as an SVG document.
pub fn draw(
    chart: Chart,
    a: &Activity,
    names: &BTreeMap<InstitutionId, String>,
) -> Result<String, String> {
    let lines = series(chart, a, names);
    let (title, unit) = titles(chart, a.bucket);
    let xs = lines.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x_min, x_max) = xs.fold((u64::MAX, 0), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (x_min, x_max) = if x_min > x_max {
        (0, a.bucket_ms)
    } else {
        (x_min, x_max.max(x_min.saturating_add(a.bucket_ms)))
    };
    let ys = lines.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (y_min, y_max) = ys.fold((0f64, 0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let pad = ((y_max - y_min) * 0.1).max(1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut plot = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(x_min..x_max, (y_min - pad.min(y_min.abs()))..(y_max + pad))
            .map_err(|e| e.to_string())?;
        // One label per bucket at most, so a short range does not repeat a time.
        let buckets = (x_max - x_min) / a.bucket_ms.max(1) + 1;
        plot.configure_mesh()
            .x_labels(usize::try_from(buckets.min(6)).unwrap_or(6))
            .x_label_formatter(&|x| clock(*x))
            .x_desc("UTC")
            .y_desc(unit)
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, s) in lines.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            plot.draw_series(LineSeries::new(
                s.points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(s.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
            });
            plot.draw_series(s.points.iter().map(|p| Circle::new(*p, 3, colour.filled())))
                .map_err(|e| e.to_string())?;
        }
        if !lines.is_empty() {
            plot.configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::audit_activity::{BlockBucket, FlowBucket, PaymentBucket};
    use crate::api::audit_scan::BlockRange;

    fn activity() -> Activity {
        Activity {
            range: BlockRange { from: 1, to: 9 },
            bucket: "minute",
            bucket_ms: 60_000,
            payments: vec![
                PaymentBucket {
                    start_ms: 60_000,
                    currency: "CNY".into(),
                    kind: "Transferred",
                    count: 2,
                    volume: 22_090,
                },
                PaymentBucket {
                    start_ms: 60_000,
                    currency: "CNY".into(),
                    kind: "ToppedUp",
                    count: 1,
                    volume: 10,
                },
            ],
            flows: vec![FlowBucket {
                start_ms: 120_000,
                currency: "CNY".into(),
                institution: InstitutionId(1),
                net: -500,
                cumulative: -500,
            }],
            corridors: vec![],
            blocks: vec![BlockBucket {
                start_ms: 60_000,
                blocks: 4,
                transactions: 3,
                lag_ms_median: Some(250),
                lag_ms_max: Some(1_500),
            }],
        }
    }

    #[test]
    fn each_chart_draws_its_series_from_the_activitys_figures() {
        let a = activity();
        let names = BTreeMap::from([(InstitutionId(1), "Bank <A> & Co".to_string())]);
        // Kinds summed per bucket and currency: 3 movements, ¥221.00.
        let payments = series(Chart::Payments, &a, &names);
        assert_eq!(payments.len(), 1);
        assert_eq!(payments[0].points, [(60_000, 3.0)]);
        let volume = series(Chart::Volume, &a, &names);
        assert_eq!(volume[0].points, [(60_000, 221.0)]);
        let flows = series(Chart::Flows, &a, &names);
        assert_eq!(flows[0].label, "Bank <A> & Co CNY");
        assert_eq!(flows[0].points, [(120_000, -5.0)]);
        let blocks = series(Chart::Blocks, &a, &names);
        assert_eq!(blocks[1].points, [(60_000, 3.0)]);
        let latency = series(Chart::Latency, &a, &names);
        assert_eq!(latency[0].points, [(60_000, 0.25)]);
        assert_eq!(latency[1].points, [(60_000, 1.5)]);
        for chart in Chart::ALL {
            let svg = draw(chart, &a, &names).unwrap_or_default();
            assert!(svg.starts_with("<svg"), "{}: {svg}", chart.name());
            // A name is text in the SVG, never markup.
            assert!(!svg.contains("<A>"), "{}", chart.name());
        }
        let flows = draw(Chart::Flows, &a, &names).unwrap_or_default();
        assert!(flows.contains("Bank &lt;A&gt; &amp; Co CNY"), "{flows}");
    }
}
