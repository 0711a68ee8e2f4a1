//! PNG line charts. plotters draws into an RGB buffer; text uses a TrueType file found on the
//! system (through `ab_glyph`, so no fontconfig or freetype is needed) and `png` encodes the result.
//! Without any font file the charts are skipped and the report says so.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 560;
/// The family name charts ask for; whatever file was found is registered under it.
const FAMILY: &str = "sans-serif";

/// Well-known places (Debian's fonts-dejavu-core first), then any `.ttf` under /usr/share/fonts.
pub(crate) fn find_font() -> Option<PathBuf> {
    let known = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    ];
    if let Some(found) = known.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return Some(found);
    }
    first_ttf(Path::new("/usr/share/fonts"), 4)
}

fn first_ttf(dir: &Path, depth: u32) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    if let Some(file) = entries
        .iter()
        .find(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ttf")))
    {
        return Some(file.clone());
    }
    if depth == 0 {
        return None;
    }
    entries
        .iter()
        .filter(|p| p.is_dir())
        .find_map(|p| first_ttf(p, depth - 1))
}

/// Registers the font for the charts; `false` if there is none (then do not draw).
pub(crate) fn load_font() -> bool {
    let Some(path) = find_font() else {
        return false;
    };
    let Ok(bytes) = std::fs::read(&path) else {
        return false;
    };
    // plotters keeps fonts for the life of the program.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok()
}

/// One line on a chart.
pub(crate) struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Lines of one system share a colour (by index); a thin line is its secondary figure.
    pub color: usize,
    pub thin: bool,
}

/// Tether red, MeshCentral blue, then the palette.
fn color(index: usize) -> RGBAColor {
    match index {
        0 => RGBColor(200, 30, 60).to_rgba(),
        1 => RGBColor(30, 90, 200).to_rgba(),
        n => Palette99::pick(n).to_rgba(),
    }
}

/// A line chart with a point at every measurement, written as PNG.
pub(crate) fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> anyhow::Result<()> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let x_max = all().map(|p| p.0).fold(0.0, f64::max).max(1.0) * 1.05;
    let y_max = all().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.15;
    let mut buffer = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 24))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|v| number(*v, x_max))
            .y_label_formatter(&|v| number(*v, y_max))
            .label_style((FAMILY, 15))
            .draw()
            .map_err(draw_error)?;
        for line in series {
            let color = color(line.color);
            let (width, dot) = if line.thin { (1, 3) } else { (3, 5) };
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    color.stroke_width(width),
                ))
                .map_err(draw_error)?
                .label(line.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(width))
                });
            chart
                .draw_series(
                    line.points
                        .iter()
                        .map(move |&p| Circle::new(p, dot, color.filled())),
                )
                .map_err(draw_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FAMILY, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    write_png(path, &buffer)
}

/// Axis numbers without decimals unless the axis is short.
fn number(value: f64, axis_max: f64) -> String {
    if axis_max >= 20.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn draw_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {error}")
}

fn write_png(path: &Path, rgb: &[u8]) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png_when_a_font_is_present() {
        if !load_font() {
            eprintln!("no TrueType font on this system; chart drawing not exercised");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.png");
        let series = [Series {
            name: "Tether".into(),
            points: vec![(0.0, 10.0), (1000.0, 20.0)],
            color: 0,
            thin: false,
        }];
        line_chart(&path, "RSS", "agents", "MB", &series).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
