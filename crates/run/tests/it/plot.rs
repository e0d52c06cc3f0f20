//! The charts: a finite y range for any values, and a picture for no points or NaN.

use fashion_mixer_run::report::plot::{Series, line_chart, y_range};

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
