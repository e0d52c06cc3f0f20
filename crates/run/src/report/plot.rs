//! Pictures: line charts (loss and accuracy per epoch, a sweep's runs side by side) and the
//! confusion matrix, as PNG bytes. Data in, bytes out; writing them is the caller's.

use std::ops::Range;
use std::sync::Once;

use fashion_mixer_data::CLASS_NAMES;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// What drawing on a picture's pixels can fail with.
type DrawError = DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>;

/// A picture that could not be drawn: what the plotting library said.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlotError(DrawError);

impl From<DrawError> for PlotError {
    fn from(error: DrawError) -> Self {
        Self(error)
    }
}

/// Size of the loss and accuracy charts, in pixels.
pub const CHART_SIZE: (u32, u32) = (900, 560);
/// Size of the confusion-matrix picture, in pixels.
pub const CONFUSION_SIZE: (u32, u32) = (900, 820);

/// The font every picture uses: shipped with the crate (DejaVu Sans, free licence beside it),
/// so no system font or fontconfig is needed.
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
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
    draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<(), DrawError>,
) -> Result<Vec<u8>, PlotError> {
    register_font();
    let mut rgb = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        draw(root.clone())?;
        root.present()?;
    }
    Ok(encode_png(rgb, size))
}

/// A line chart (x: epochs) as PNG bytes: title, labelled axes, one line per series, legend.
pub fn line_chart(
    title: &str,
    y_label: &str,
    series: &[Series],
    y_range: Range<f64>,
) -> Result<Vec<u8>, PlotError> {
    let max_x = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    render(CHART_SIZE, |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 26))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.5..max_x + 0.5, y_range)?;
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
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let style = ShapeStyle::from(colour).stroke_width(2);
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style));
            if s.points.len() <= 60 {
                chart.draw_series(
                    s.points
                        .iter()
                        .map(|&p| Circle::new(p, 3, ShapeStyle::from(colour).filled())),
                )?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleRight)
            .label_font((FAMILY, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
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
pub fn confusion_chart(confusion: &[Vec<usize>]) -> Result<Vec<u8>, PlotError> {
    let n = confusion.len();
    render(CONFUSION_SIZE, |root| {
        let (w, h) = (CONFUSION_SIZE.0 as i32, CONFUSION_SIZE.1 as i32);
        let (left, top, bottom) = (140, 70, 120);
        let cell = ((w - left - 20) / n as i32).min((h - top - bottom) / n as i32);
        let title = (
            "Test confusion matrix (rows: true class, columns: predicted)",
            22,
        );
        root.draw(&Text::new(title.0, (20, 22), (FAMILY, title.1)))?;
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
                ))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(200, 200, 200),
                ))?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let style = TextStyle::from((FAMILY, 15).into_font())
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new(
                    count.to_string(),
                    (x + cell / 2, y + cell / 2),
                    style,
                ))?;
            }
            let label =
                TextStyle::from((FAMILY, 15).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
            let name = CLASS_NAMES.get(row).copied().unwrap_or("?");
            root.draw(&Text::new(
                name,
                (left - 8, top + row as i32 * cell + cell / 2),
                label,
            ))?;
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
            ))?;
        }
        Ok(())
    })
}
