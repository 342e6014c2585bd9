//! The cost-per-day chart as a PNG: one bar per day of the period, drawn with
//! plotters on an RGB buffer and encoded with `png`. Labels use the DejaVu Sans
//! subset in `assets/fonts`, so no system font is needed.

use std::sync::Once;

use anyhow::Context;
use chrono::NaiveDate;
use plotters::prelude::*;

/// The chart's size in pixels: wide enough for 31 bars, and what Telegram shows
/// without scaling on a phone.
pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 480;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");
static REGISTER_FONT: Once = Once::new();

const BAR: RGBColor = RGBColor(0x2f, 0x6f, 0xb5);
const GRID: RGBColor = RGBColor(0xe4, 0xe7, 0xeb);

/// A PNG of `days` (cost in US dollars per day), titled `title`.
///
/// # Errors
///
/// Drawing or encoding failing (a bug, not bad input: every series draws).
pub fn cost_per_day(title: &str, days: &[(NaiveDate, f64)]) -> anyhow::Result<Vec<u8>> {
    REGISTER_FONT.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            tracing::error!("the embedded chart font does not load; labels will be missing");
        }
    });
    let mut rgb = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    draw(&mut rgb, title, days).map_err(|err| anyhow::anyhow!("cannot draw the chart: {err}"))?;
    let mut png_bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png_bytes, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .context("cannot write the PNG header")?;
        writer
            .write_image_data(&rgb)
            .context("cannot encode the chart as PNG")?;
    }
    Ok(png_bytes)
}

fn draw(
    rgb: &mut [u8],
    title: &str,
    days: &[(NaiveDate, f64)],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let n_days = u32::try_from(days.len()).unwrap_or(u32::MAX).max(1);
    let top = days.iter().map(|(_, cost)| *cost).fold(0.0_f64, f64::max);
    // Headroom above the highest bar; a flat zero chart still gets a scale.
    let y_max = if top > 0.0 { top * 1.15 } else { 1.0 };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((0u32..n_days).into_segmented(), 0.0..y_max)?;
    let label_every = (n_days as usize).div_ceil(12).max(1);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(GRID)
        .bold_line_style(GRID)
        .x_labels(n_days as usize)
        .x_label_formatter(&|value| match value {
            SegmentValue::CenterOf(index) if (*index as usize).is_multiple_of(label_every) => days
                .get(*index as usize)
                .map(|(day, _)| day.format("%m-%d").to_string())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc("US$")
        .y_label_formatter(&|cost| format!("{cost:.2}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    chart.draw_series(days.iter().enumerate().map(|(index, (_, cost))| {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(index), 0.0),
                (SegmentValue::Exact(index + 1), *cost),
            ],
            BAR.filled(),
        );
        bar.set_margin(0, 0, 2, 2);
        bar
    }))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let mut reader = png::Decoder::new(bytes).read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        (info, pixels)
    }

    /// The PNG decodes at the documented size and has bars and labels on it.
    #[test]
    fn the_chart_is_a_png_of_the_expected_size() {
        let start = NaiveDate::from_ymd_opt(2024, 2, 1).unwrap();
        let days: Vec<(NaiveDate, f64)> = start
            .iter_days()
            .take(29)
            .enumerate()
            .map(|(i, day)| (day, (i % 7) as f64 * 0.75))
            .collect();
        let bytes = cost_per_day("acme · cost per day, 2024-02", &days).unwrap();
        let (info, pixels) = decode(&bytes);
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let bar_pixels = pixels
            .chunks(3)
            .filter(|p| p == &[BAR.0, BAR.1, BAR.2])
            .count();
        assert!(bar_pixels > 1000, "bars drawn: {bar_pixels} pixels");
        let dark_pixels = pixels
            .chunks(3)
            .filter(|p| p.iter().all(|c| *c < 80))
            .count();
        assert!(dark_pixels > 200, "text drawn: {dark_pixels} dark pixels");
    }

    #[test]
    fn an_empty_period_still_draws() {
        let bytes = cost_per_day("nothing", &[]).unwrap();
        assert_eq!(decode(&bytes).0.width, WIDTH);
    }
}
