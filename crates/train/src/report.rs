//! A run's pictures and report, made from its `metrics.csv` and (when the run has a record)
//! `eval.json`: `loss.png`, `accuracy.png`, `confusion.png` and `report.md`.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;

use burn::module::Module;
use burn::prelude::Device;
use fashion_mixer_data::{CLASS_NAMES, FashionMnistDataset};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::artifacts::{RunDir, write_atomic};
use crate::config::TrainingConfig;
use crate::error::TrainError;
use crate::evaluation::Evaluation;
use crate::metrics::EpochMetrics;

/// Size of the loss and accuracy charts, in pixels.
pub const CHART_SIZE: (u32, u32) = (900, 560);
/// Size of the confusion-matrix picture, in pixels.
pub const CONFUSION_SIZE: (u32, u32) = (900, 820);

/// The font every picture uses: shipped with the crate (DejaVu Sans, free licence beside it),
/// so no system font or fontconfig is needed.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| unreachable!("the shipped font parses"));
    });
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its legend entry.
    pub label: String,
    /// (x, y) points, in order.
    pub points: Vec<(f64, f64)>,
}

/// The colours lines take, in order (a colour-blind-safe palette).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

/// Encodes an RGB buffer of `size` as PNG bytes.
fn encode_png(rgb: Vec<u8>, (w, h): (u32, u32)) -> Vec<u8> {
    use image::ImageEncoder;
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, w, h, image::ExtendedColorType::Rgb8)
        .expect("an in-memory RGB buffer of the stated size encodes");
    png
}

/// Draws into a fresh RGB buffer of `size` and returns it as PNG bytes.
fn render(
    size: (u32, u32),
    draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
    register_font();
    let mut rgb = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        draw(root.clone())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(encode_png(rgb, size))
}

/// A line chart (x: epochs) as PNG bytes: title, labelled axes, one line per series, legend.
pub fn line_chart(
    title: &str,
    y_label: &str,
    series: &[Series],
    y_range: Range<f64>,
) -> Result<Vec<u8>, String> {
    let max_x = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    render(CHART_SIZE, |root| {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 26))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.5..max_x + 0.5, y_range)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_label)
            .axis_desc_style((FAMILY, 18))
            .label_style((FAMILY, 15))
            .x_labels((max_x as usize + 1).min(16))
            // Whole epochs only: no repeated or fractional labels.
            .x_label_formatter(&|x| {
                if (x - x.round()).abs() < 1e-6 {
                    format!("{}", x.round())
                } else {
                    String::new()
                }
            })
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, s) in series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let style = ShapeStyle::from(colour).stroke_width(2);
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(|e| err(&e))?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style));
            if s.points.len() <= 60 {
                chart
                    .draw_series(
                        s.points
                            .iter()
                            .map(|&p| Circle::new(p, 3, ShapeStyle::from(colour).filled())),
                    )
                    .map_err(|e| err(&e))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleRight)
            .label_font((FAMILY, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))
    })
}

/// A `[low, high]` range around every finite y value of `series`, padded by 5%, clamped to
/// `limits`; never empty or infinite (plotting an infinite range would never finish).
pub fn y_range(series: &[Series], limits: Range<f64>) -> Range<f64> {
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (lo, hi) = if lo.is_finite() {
        let pad = ((hi - lo) * 0.05).max(1e-3);
        ((lo - pad).max(limits.start), (hi + pad).min(limits.end))
    } else {
        (limits.start, limits.end) // nothing to show: the whole allowed range
    };
    let lo = if lo.is_finite() { lo } else { 0.0 };
    let hi = if hi.is_finite() && hi > lo {
        hi
    } else {
        lo + 1.0
    };
    lo..hi
}

/// The confusion matrix (rows: true class, columns: predicted) as PNG bytes, counts in the
/// cells, each cell shaded by its share of the true class.
pub fn confusion_chart(confusion: &[Vec<usize>]) -> Result<Vec<u8>, String> {
    let n = confusion.len();
    render(CONFUSION_SIZE, |root| {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let (w, h) = (CONFUSION_SIZE.0 as i32, CONFUSION_SIZE.1 as i32);
        let (left, top, bottom) = (140, 70, 120);
        let cell = ((w - left - 20) / n as i32).min((h - top - bottom) / n as i32);
        let title = (
            "Test confusion matrix (rows: true class, columns: predicted)",
            22,
        );
        root.draw(&Text::new(title.0, (20, 22), (FAMILY, title.1)))
            .map_err(|e| err(&e))?;
        for (row, counts) in confusion.iter().enumerate() {
            let total = counts.iter().sum::<usize>().max(1) as f64;
            for (col, &count) in counts.iter().enumerate() {
                let share = count as f64 / total;
                let (x, y) = (left + col as i32 * cell, top + row as i32 * cell);
                // White for 0, deep blue for the whole row.
                let shade = |full: u8| (255.0 - share * (255.0 - full as f64)) as u8;
                let fill = RGBColor(shade(8), shade(48), shade(107));
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    fill.filled(),
                ))
                .map_err(|e| err(&e))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(200, 200, 200),
                ))
                .map_err(|e| err(&e))?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let style = TextStyle::from((FAMILY, 15).into_font())
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new(
                    count.to_string(),
                    (x + cell / 2, y + cell / 2),
                    style,
                ))
                .map_err(|e| err(&e))?;
            }
            let label =
                TextStyle::from((FAMILY, 15).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
            let name = CLASS_NAMES.get(row).copied().unwrap_or("?");
            root.draw(&Text::new(
                name,
                (left - 8, top + row as i32 * cell + cell / 2),
                label,
            ))
            .map_err(|e| err(&e))?;
        }
        let grid_bottom = top + n as i32 * cell;
        for col in 0..n {
            let label =
                TextStyle::from((FAMILY, 15).into_font().transform(FontTransform::Rotate90))
                    .pos(Pos::new(HPos::Left, VPos::Center));
            let name = CLASS_NAMES.get(col).copied().unwrap_or("?");
            root.draw(&Text::new(
                name,
                (left + col as i32 * cell + cell / 2, grid_bottom + 8),
                label,
            ))
            .map_err(|e| err(&e))?;
        }
        Ok(())
    })
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `report.md`.
    pub report: PathBuf,
    /// The pictures written (`confusion.png` only when there was an evaluation).
    pub pictures: Vec<PathBuf>,
}

fn picture(path: PathBuf, png: Result<Vec<u8>, String>) -> Result<PathBuf, TrainError> {
    let png = png.map_err(|message| TrainError::Plot {
        path: path.clone(),
        message,
    })?;
    write_atomic(&path, &png)?;
    Ok(path)
}

/// Every field of a JSON object as `(dotted.name, value)` rows, nested objects flattened.
fn flatten(prefix: &str, value: &serde_json::Value, rows: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&name, value, rows);
            }
        }
        serde_json::Value::String(s) => rows.push((prefix.to_string(), s.clone())),
        other => rows.push((prefix.to_string(), other.to_string())),
    }
}

/// `n` with a comma between each group of three digits (143,786).
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pct(fraction: f64) -> String {
    format!("{:.2}%", 100.0 * fraction)
}

/// Writes `loss.png`, `accuracy.png`, `confusion.png` (when `eval` is given) and `report.md`
/// into `run`, each atomically.
pub fn write_report(
    run: &RunDir,
    config: &TrainingConfig,
    metrics: &[EpochMetrics],
    eval: Option<&Evaluation>,
) -> Result<ReportFiles, TrainError> {
    let epochs = |f: fn(&EpochMetrics) -> f64| -> Vec<(f64, f64)> {
        metrics.iter().map(|m| (m.epoch as f64, f(m))).collect()
    };
    let series = |train: fn(&EpochMetrics) -> f64, test: fn(&EpochMetrics) -> f64| {
        vec![
            Series {
                label: "train".into(),
                points: epochs(train),
            },
            Series {
                label: "test".into(),
                points: epochs(test),
            },
        ]
    };
    let loss = series(|m| m.train_loss, |m| m.test_loss);
    let accuracy = series(|m| 100.0 * m.train_accuracy, |m| 100.0 * m.test_accuracy);
    let mut pictures = vec![
        picture(
            run.root().join("loss.png"),
            line_chart(
                "Cross-entropy loss per epoch",
                "loss",
                &loss,
                y_range(&loss, 0.0..f64::INFINITY),
            ),
        )?,
        picture(
            run.root().join("accuracy.png"),
            line_chart(
                "Accuracy per epoch",
                "accuracy (%)",
                &accuracy,
                y_range(&accuracy, 0.0..100.0),
            ),
        )?,
    ];
    if let Some(eval) = eval {
        pictures.push(picture(
            run.root().join("confusion.png"),
            confusion_chart(&eval.test.confusion),
        )?);
    }

    let md = report_markdown(run.root(), config, metrics, eval);
    let report = run.root().join("report.md");
    write_atomic(&report, md.as_bytes())?;
    Ok(ReportFiles { report, pictures })
}

/// The text of `report.md`.
pub fn report_markdown(
    root: &Path,
    config: &TrainingConfig,
    metrics: &[EpochMetrics],
    eval: Option<&Evaluation>,
) -> String {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| root.display().to_string());
    let params = config
        .model
        .init(&Device::flex())
        .map(|m| thousands(m.num_params()))
        .unwrap_or_else(|e| format!("(invalid model: {e})"));
    let mut md = String::new();
    let _ = writeln!(md, "# Training report: {name}\n");
    let done = metrics.last().map_or(0, |m| m.epoch);
    let status = if done >= config.epochs {
        "finished".to_string()
    } else {
        format!("interrupted after epoch {done}")
    };
    let _ = writeln!(
        md,
        "Backend **{}**, seed {}, {} parameters; {done} of {} epochs ({status}).\n",
        config.backend, config.seed, params, config.epochs
    );

    let _ = writeln!(md, "## Results\n");
    if let (Some(last), Some(best)) = (
        metrics.last(),
        metrics
            .iter()
            .max_by(|a, b| a.test_accuracy.total_cmp(&b.test_accuracy)),
    ) {
        let best_train = metrics
            .iter()
            .max_by(|a, b| a.train_accuracy.total_cmp(&b.train_accuracy))
            .expect("non-empty");
        let mut seconds: Vec<f64> = metrics.iter().map(|m| m.epoch_seconds).collect();
        seconds.sort_by(f64::total_cmp);
        let total: f64 = seconds.iter().sum();
        let _ = writeln!(md, "| | train | test |\n|---|---|---|");
        let _ = writeln!(
            md,
            "| final accuracy (epoch {}) | {} | {} |",
            last.epoch,
            pct(last.train_accuracy),
            pct(last.test_accuracy)
        );
        let _ = writeln!(
            md,
            "| best accuracy | {} (epoch {}) | {} (epoch {}) |",
            pct(best_train.train_accuracy),
            best_train.epoch,
            pct(best.test_accuracy),
            best.epoch
        );
        let _ = writeln!(
            md,
            "| final loss | {:.4} | {:.4} |",
            last.train_loss, last.test_loss
        );
        if let Some(eval) = eval {
            let _ = writeln!(
                md,
                "| accuracy of the saved record (`eval.json`) | {} | {} |",
                pct(eval.train.accuracy),
                pct(eval.test.accuracy)
            );
        }
        let _ = writeln!(
            md,
            "\nWall time per epoch (training and testing): median {:.1} s, total {:.1} min.\n",
            seconds[seconds.len() / 2],
            total / 60.0
        );
        // Train accuracy here is measured during the epoch, while the weights change; the
        // record's own (eval.json) is the fairer comparison when there is one.
        let (train, test, source) = match eval {
            Some(e) => (e.train.accuracy, e.test.accuracy, "the saved record"),
            None => (last.train_accuracy, last.test_accuracy, "the last epoch"),
        };
        let gap = 100.0 * (train - test);
        let verdict = if gap > 2.0 {
            "the model overfits: it fits the training images noticeably better than unseen ones"
        } else if gap > 0.5 {
            "slight overfitting"
        } else {
            "no sign of overfitting"
        };
        let _ = writeln!(
            md,
            "**Overfitting:** train accuracy exceeds test accuracy by {gap:.2} points ({source}): \
             {verdict}. Best test accuracy was at epoch {} of {done}.\n",
            best.epoch
        );
    } else {
        let _ = writeln!(md, "No epoch has completed yet.\n");
    }

    let mut notes = Vec::new();
    if config.label_smoothing > 0.0 {
        notes.push(format!(
            "the train loss is the label-smoothed loss (smoothing {}), the test loss plain \
             cross-entropy, so the train loss stays above what plain cross-entropy would show",
            config.label_smoothing
        ));
    }
    if config.crop_padding > 0 || config.horizontal_flip || config.model.dropout > 0.0 {
        notes.push(
            "the train accuracy per epoch is measured on augmented images (and with dropout, when \
             on) while the weights change; the saved record's accuracy on the plain training \
             images (eval.json) is the fair comparison with the test accuracy"
                .to_string(),
        );
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "Note: {}.\n", notes.join("; "));
    }
    let _ = writeln!(md, "![loss](loss.png)\n\n![accuracy](accuracy.png)\n");
    if let Some(eval) = eval {
        let _ = writeln!(
            md,
            "## Per-class test accuracy\n\n| class | accuracy |\n|---|---|"
        );
        for (class, acc) in CLASS_NAMES.iter().zip(&eval.test.per_class_accuracy) {
            let _ = writeln!(md, "| {class} | {} |", pct(*acc));
        }
        let _ = writeln!(md, "\n![confusion matrix](confusion.png)\n");
    } else {
        let _ = writeln!(
            md,
            "No model record could be evaluated, so there is no per-class accuracy or confusion matrix.\n"
        );
    }

    let _ = writeln!(
        md,
        "## Hyperparameters (config.json)\n\n| field | value |\n|---|---|"
    );
    let mut rows = Vec::new();
    flatten(
        "",
        &serde_json::to_value(config).expect("serialisable"),
        &mut rows,
    );
    for (field, value) in rows {
        let _ = writeln!(md, "| `{field}` | {value} |");
    }

    let _ = writeln!(
        md,
        "\n## Per epoch\n\n| epoch | train loss | train acc | test loss | test acc | lr | seconds |\n|---|---|---|---|---|---|---|"
    );
    for m in metrics {
        let _ = writeln!(
            md,
            "| {} | {:.4} | {} | {:.4} | {} | {:.2e} | {:.1} |",
            m.epoch,
            m.train_loss,
            pct(m.train_accuracy),
            m.test_loss,
            pct(m.test_accuracy),
            m.learning_rate,
            m.epoch_seconds
        );
    }
    md
}

/// `eval.json` when it was written after the record it scores (so it still describes it).
pub fn current_evaluation(run: &RunDir) -> Option<Evaluation> {
    let record = crate::inference::record_path(run).ok()?;
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&run.eval())? < modified(&record)? {
        return None;
    }
    let eval: Evaluation = serde_json::from_slice(&std::fs::read(run.eval()).ok()?).ok()?;
    (eval.record == run.relative(&record)).then_some(eval)
}

/// Reports on the run in `run` from its `config.json` and `metrics.csv`. The record (the final
/// one, or the newest checkpoint of an interrupted run) is scored on `splits` (writing
/// `eval.json`) unless an up-to-date `eval.json` exists; without a record there is no
/// evaluation and no confusion matrix.
pub fn report_run(
    run: &RunDir,
    splits: Option<(&FashionMnistDataset, &FashionMnistDataset)>,
) -> Result<ReportFiles, TrainError> {
    let config = crate::artifacts::load_config(run)?;
    let metrics = crate::metrics::read_metrics(&run.metrics())?;
    let eval = match current_evaluation(run) {
        Some(eval) => Some(eval),
        None if crate::inference::record_path(run).is_ok() => match splits {
            Some((train, test)) => {
                let loaded = crate::inference::load_model(run, None)?;
                Some(crate::evaluation::evaluate(run, &loaded, train, test)?)
            }
            None => None,
        },
        None => None,
    };
    write_report(run, &config, &metrics, eval.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Vec<Series> {
        vec![Series {
            label: "s".into(),
            points: values
                .iter()
                .enumerate()
                .map(|(i, &v)| (i as f64 + 1.0, v))
                .collect(),
        }]
    }

    #[test]
    fn y_range_is_always_finite_and_not_empty() {
        for (values, limits) in [
            (vec![], 0.0..f64::INFINITY),
            (vec![f64::NAN, f64::INFINITY], 0.0..f64::INFINITY),
            (vec![0.5, 0.5], 0.0..f64::INFINITY),
            (vec![100.0], 0.0..100.0),
            (vec![0.2, 1.4], 0.0..f64::INFINITY),
        ] {
            let r = y_range(&series(&values), limits);
            assert!(
                r.start.is_finite() && r.end.is_finite() && r.end > r.start,
                "{values:?}: {r:?}"
            );
        }
        let r = y_range(&series(&[0.2, 1.4]), 0.0..f64::INFINITY);
        assert!(r.start < 0.2 && r.end > 1.4);
    }

    #[test]
    fn charts_of_no_points_or_nan_still_draw() {
        for values in [vec![], vec![f64::NAN], vec![1.0]] {
            let s = series(&values);
            let png = line_chart("t", "y", &s, y_range(&s, 0.0..f64::INFINITY)).unwrap();
            assert!(png.starts_with(b"\x89PNG"));
        }
    }
}
