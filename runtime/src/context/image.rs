//! Floor-plan images: PNG or JPEG files turned into occupancy grids and marked sites.
//!
//! A spec declares the scale and which pixels are obstacles:
//! `context floor = image("floor.png") { scale: 5 cm/px, obstacles: dark }`. The rule is one
//! of `dark` (luma below a threshold, 0.5 by default), `light` (luma at or above it) or a
//! colour such as `"#ff0000"`. Luma is Y′ of ITU-R BT.709, `0.2126 R′ + 0.7152 G′ + 0.0722 B′`,
//! taken on the gamma-encoded channel values scaled to 0..1, as image editors show it.
//!
//! Transparent pixels are composited over white first, so a plan drawn in black on a
//! transparent background reads as black lines on free space.
//!
//! Pixels map to grid cells one to one with the axis convention of [`Grid`]: image row 0 is the
//! top of the plan and the image's lower-left corner sits at the origin.

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use image::{ImageFormat, ImageReader, Limits};

use super::error::{ContextError, read_file};
use super::grid::Grid;

/// Largest width and largest height, in pixels, of an image that the loader decodes.
///
/// NOTE: 4096 × 4096 pixels at 5 cm per pixel cover 200 m × 200 m, a large warehouse. An image
/// of that size takes 64 MiB as decoded RGBA.
pub const MAX_IMAGE_SIDE: u32 = 4096;

/// An sRGB colour with 8 bits per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rgb(pub [u8; 3]);

impl Rgb {
    /// Pure red, `#ff0000`.
    pub const RED: Rgb = Rgb([255, 0, 0]);
    /// Pure blue, `#0000ff`.
    pub const BLUE: Rgb = Rgb([0, 0, 255]);

    /// Luma Y′ (BT.709 coefficients on gamma-encoded values) in 0..=1.
    pub fn luma(self) -> f64 {
        let [r, g, b] = self.0.map(|channel| f64::from(channel) / 255.0);
        0.2126 * r + 0.7152 * g + 0.0722 * b
    }
}

impl FromStr for Rgb {
    type Err = String;

    /// Parses `#rrggbb` or `#rgb` hexadecimal notation.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("expected a colour `#rrggbb` or `#rgb`, found `{text}`");
        let digits = text.strip_prefix('#').ok_or_else(invalid)?;
        if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let channel = |hex: &str| u8::from_str_radix(hex, 16).map_err(|_| invalid());
        match digits.len() {
            6 => Ok(Rgb([
                channel(&digits[0..2])?,
                channel(&digits[2..4])?,
                channel(&digits[4..6])?,
            ])),
            3 => {
                let short = |index: usize| channel(&digits[index..=index]).map(|value| value * 17);
                Ok(Rgb([short(0)?, short(1)?, short(2)?]))
            }
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for Rgb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [r, g, b] = self.0;
        write!(f, "#{r:02x}{g:02x}{b:02x}")
    }
}

/// A colour and how far each channel of a pixel may differ from it and still match.
///
/// Exact matching (`tolerance` 0) suits PNG; JPEG compression shifts colours, so marks in a
/// JPEG need a tolerance of a few dozen levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColourMatch {
    pub colour: Rgb,
    pub tolerance: u8,
}

impl ColourMatch {
    /// Matches `colour` exactly.
    pub fn exact(colour: Rgb) -> Self {
        ColourMatch {
            colour,
            tolerance: 0,
        }
    }

    /// Whether every channel of `pixel` is within the tolerance of the colour.
    pub fn matches(&self, pixel: Rgb) -> bool {
        pixel
            .0
            .iter()
            .zip(self.colour.0)
            .all(|(&value, target)| value.abs_diff(target) <= self.tolerance)
    }
}

/// Rule that selects the obstacle pixels of a floor plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ObstacleRule {
    /// Pixels whose luma is below `threshold` (0..=1).
    Dark { threshold: f64 },
    /// Pixels whose luma is at or above `threshold` (0..=1).
    Light { threshold: f64 },
    /// Pixels of one colour.
    Colour(ColourMatch),
}

impl ObstacleRule {
    /// Luma threshold of `dark` and `light` when the spec gives none.
    pub const DEFAULT_THRESHOLD: f64 = 0.5;

    /// Whether a pixel of this colour is an obstacle.
    pub fn is_obstacle(&self, pixel: Rgb) -> bool {
        match self {
            ObstacleRule::Dark { threshold } => pixel.luma() < *threshold,
            ObstacleRule::Light { threshold } => pixel.luma() >= *threshold,
            ObstacleRule::Colour(colour) => colour.matches(pixel),
        }
    }
}

impl FromStr for ObstacleRule {
    type Err = String;

    /// Parses the value of `obstacles:` in a spec: `dark`, `light` (both with the default
    /// threshold) or a colour `#rrggbb`, matched exactly.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "dark" => Ok(ObstacleRule::Dark {
                threshold: Self::DEFAULT_THRESHOLD,
            }),
            "light" => Ok(ObstacleRule::Light {
                threshold: Self::DEFAULT_THRESHOLD,
            }),
            _ if text.starts_with('#') => {
                Ok(ObstacleRule::Colour(ColourMatch::exact(text.parse()?)))
            }
            _ => Err(format!(
                "expected `dark`, `light` or a colour such as `#ff0000`, found `{text}`"
            )),
        }
    }
}

/// A connected blob of marker pixels on a floor plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// World position in metres of the blob's centroid: the mean of its pixel centres.
    pub position: [f64; 2],
    /// Number of pixels in the blob.
    pub pixels: usize,
}

/// A decoded floor-plan image with its scale.
#[derive(Clone, Debug)]
pub struct FloorImage {
    path: PathBuf,
    width: usize,
    height: usize,
    metres_per_pixel: f64,
    origin: [f64; 2],
    /// Row-major, row 0 at the top, composited over white.
    pixels: Vec<Rgb>,
}

impl FloorImage {
    /// Loads a PNG or JPEG file whose pixels are `metres_per_pixel` metres wide, with its
    /// lower-left corner at the world origin.
    ///
    /// The format is taken from the file content, not its extension. Images wider or taller than
    /// [`MAX_IMAGE_SIDE`] are rejected before they are decoded.
    #[tracing::instrument(skip_all, fields(path = %path.display()))]
    pub fn load(path: &Path, metres_per_pixel: f64) -> Result<Self, ContextError> {
        check_scale(path, metres_per_pixel)?;
        let bytes = read_file(path)?;
        Self::from_bytes(path, &bytes, metres_per_pixel)
    }

    /// Decodes a PNG or JPEG image from memory; `path` only names the file in errors.
    pub fn from_bytes(
        path: &Path,
        bytes: &[u8],
        metres_per_pixel: f64,
    ) -> Result<Self, ContextError> {
        check_scale(path, metres_per_pixel)?;
        let format = detect_format(path, bytes)?;
        let name = format_name(format);
        let decode_error = |error: image::ImageError| {
            ContextError::format(path, format!("cannot decode the {name} image: {error}"))
        };

        let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
            .into_dimensions()
            .map_err(decode_error)?;
        if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
            return Err(ContextError::ImageTooLarge {
                path: path.to_path_buf(),
                width,
                height,
                max_side: MAX_IMAGE_SIDE,
            });
        }

        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_IMAGE_SIDE);
        limits.max_image_height = Some(MAX_IMAGE_SIDE);
        reader.limits(limits);
        let rgba = reader.decode().map_err(decode_error)?.into_rgba8();

        let pixels = rgba.pixels().map(|pixel| over_white(pixel.0)).collect();
        Ok(FloorImage {
            path: path.to_path_buf(),
            width: rgba.width() as usize,
            height: rgba.height() as usize,
            metres_per_pixel,
            origin: [0.0, 0.0],
            pixels,
        })
    }

    /// Moves the image so that its lower-left corner lies at `origin` (metres); grids and sites
    /// made afterwards use it.
    pub fn with_origin(mut self, origin: [f64; 2]) -> Self {
        self.origin = origin;
        self
    }

    /// The file the image was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Side of a pixel in metres.
    pub fn metres_per_pixel(&self) -> f64 {
        self.metres_per_pixel
    }

    /// Colour of pixel `(col, row)`, row 0 at the top, after compositing over white.
    ///
    /// # Panics
    ///
    /// Panics if the pixel lies outside the image.
    pub fn pixel(&self, col: usize, row: usize) -> Rgb {
        assert!(
            col < self.width && row < self.height,
            "pixel ({col}, {row}) is outside the image"
        );
        self.pixels[row * self.width + col]
    }

    /// Builds the occupancy grid: one cell per pixel, blocked where `rule` marks an obstacle.
    /// Pixels matching any of `markers` are free, so site marks drawn on the plan do not become
    /// obstacles (pure red has luma 0.21 and would otherwise count as `dark`).
    pub fn occupancy(&self, rule: &ObstacleRule, markers: &[ColourMatch]) -> Grid {
        let blocked = self
            .pixels
            .iter()
            .map(|&pixel| {
                rule.is_obstacle(pixel) && !markers.iter().any(|marker| marker.matches(pixel))
            })
            .collect();
        Grid::from_cells(self.width, self.height, self.metres_per_pixel, blocked)
            .with_origin(self.origin)
    }

    /// Finds the sites marked in `colour`: the centroid of each 8-connected blob of matching
    /// pixels, in world coordinates (metres, y up). Sites come in the order in which a scan
    /// from the top row down, each row left to right, first meets them.
    pub fn sites(&self, colour: &ColourMatch) -> Vec<Site> {
        let mut visited = vec![false; self.pixels.len()];
        let mut stack = Vec::new();
        let mut sites = Vec::new();

        for start in 0..self.pixels.len() {
            if visited[start] || !colour.matches(self.pixels[start]) {
                continue;
            }
            visited[start] = true;
            stack.push(start);
            let (mut count, mut sum_col, mut sum_row) = (0usize, 0.0, 0.0);

            while let Some(index) = stack.pop() {
                let (col, row) = (index % self.width, index / self.width);
                count += 1;
                sum_col += col as f64 + 0.5;
                sum_row += row as f64 + 0.5;
                for (neighbour_col, neighbour_row) in neighbours(col, row, self.width, self.height)
                {
                    let neighbour = neighbour_row * self.width + neighbour_col;
                    if !visited[neighbour] && colour.matches(self.pixels[neighbour]) {
                        visited[neighbour] = true;
                        stack.push(neighbour);
                    }
                }
            }

            let mean_col = sum_col / count as f64;
            let mean_row = sum_row / count as f64;
            sites.push(Site {
                position: [
                    self.origin[0] + mean_col * self.metres_per_pixel,
                    self.origin[1] + (self.height as f64 - mean_row) * self.metres_per_pixel,
                ],
                pixels: count,
            });
        }
        sites
    }
}

/// Loads a floor-plan image straight into an occupancy grid; see [`FloorImage::load`] and
/// [`FloorImage::occupancy`].
pub fn load_image(
    path: &Path,
    metres_per_pixel: f64,
    rule: &ObstacleRule,
) -> Result<Grid, ContextError> {
    Ok(FloorImage::load(path, metres_per_pixel)?.occupancy(rule, &[]))
}

fn check_scale(path: &Path, metres_per_pixel: f64) -> Result<(), ContextError> {
    if metres_per_pixel.is_finite() && metres_per_pixel > 0.0 {
        Ok(())
    } else {
        Err(ContextError::invalid(
            path,
            format!(
                "the scale must be a positive number of metres per pixel, got {metres_per_pixel}"
            ),
        ))
    }
}

/// Picks the decoder from the file's magic bytes, so a text file named `.png` gets a clear
/// error instead of a decoder failure.
fn detect_format(path: &Path, bytes: &[u8]) -> Result<ImageFormat, ContextError> {
    const KNOWN_OTHERS: [(&[u8], &str); 5] = [
        (b"GIF8", "GIF"),
        (b"BM", "BMP"),
        (b"II*\0", "TIFF"),
        (b"MM\0*", "TIFF"),
        (b"RIFF", "RIFF (WebP?)"),
    ];

    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(ImageFormat::Png);
    }
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        return Ok(ImageFormat::Jpeg);
    }

    let what = if bytes.is_empty() {
        "the file is empty".to_string()
    } else if let Some((_, name)) = KNOWN_OTHERS
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
    {
        format!("it is a {name} image; try converting it to PNG")
    } else if std::str::from_utf8(&bytes[..bytes.len().min(512)]).is_ok() {
        "it looks like text".to_string()
    } else {
        let head: Vec<String> = bytes
            .iter()
            .take(8)
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("it starts with the bytes {}", head.join(" "))
    };
    Err(ContextError::format(
        path,
        format!("expected a PNG or JPEG image, but {what}"),
    ))
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        _ => "image",
    }
}

/// Composites an RGBA pixel over white.
fn over_white([r, g, b, a]: [u8; 4]) -> Rgb {
    let blend = |channel: u8| {
        let (channel, alpha) = (u32::from(channel), u32::from(a));
        ((channel * alpha + 255 * (255 - alpha) + 127) / 255) as u8
    };
    Rgb([blend(r), blend(g), blend(b)])
}

/// The up to 8 neighbours of a pixel that lie inside the image.
fn neighbours(
    col: usize,
    row: usize,
    width: usize,
    height: usize,
) -> impl Iterator<Item = (usize, usize)> {
    let cols = col.saturating_sub(1)..=(col + 1).min(width - 1);
    cols.flat_map(move |c| (row.saturating_sub(1)..=(row + 1).min(height - 1)).map(move |r| (c, r)))
        .filter(move |&(c, r)| (c, r) != (col, row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, RgbaImage};
    use proptest::prelude::*;

    fn png(image: &RgbaImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        image::codecs::png::PngEncoder::new(&mut bytes)
            .write_image(
                image.as_raw(),
                image.width(),
                image.height(),
                image::ExtendedColorType::Rgba8,
            )
            .unwrap();
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<FloorImage, ContextError> {
        FloorImage::from_bytes(Path::new("plan.png"), bytes, 0.05)
    }

    #[test]
    fn rgb_parses_hex() {
        assert_eq!("#ff0000".parse(), Ok(Rgb::RED));
        assert_eq!("#00F".parse(), Ok(Rgb::BLUE));
        assert_eq!("#12ab9C".parse(), Ok(Rgb([0x12, 0xab, 0x9c])));
        assert!("ff0000".parse::<Rgb>().is_err());
        assert!("#ff00".parse::<Rgb>().is_err());
        assert!("#+f0000".parse::<Rgb>().is_err());
        assert!("#ééé".parse::<Rgb>().is_err());
        assert_eq!(Rgb([1, 2, 255]).to_string(), "#0102ff");
    }

    #[test]
    fn obstacle_rule_parses_spec_values() {
        assert_eq!("dark".parse(), Ok(ObstacleRule::Dark { threshold: 0.5 }));
        assert_eq!("light".parse(), Ok(ObstacleRule::Light { threshold: 0.5 }));
        assert_eq!(
            "#ff0000".parse(),
            Ok(ObstacleRule::Colour(ColourMatch::exact(Rgb::RED)))
        );
        assert_eq!(
            "grey".parse::<ObstacleRule>(),
            Err("expected `dark`, `light` or a colour such as `#ff0000`, found `grey`".to_string())
        );
    }

    #[test]
    fn rules_split_dark_and_light_at_half_luma() {
        let dark = ObstacleRule::Dark { threshold: 0.5 };
        let light = ObstacleRule::Light { threshold: 0.5 };

        assert!(dark.is_obstacle(Rgb([0, 0, 0])));
        assert!(dark.is_obstacle(Rgb::RED));
        assert!(!dark.is_obstacle(Rgb([128, 128, 128])));
        assert!(dark.is_obstacle(Rgb([127, 127, 127])));
        assert!(light.is_obstacle(Rgb([255, 255, 255])));
        assert!(!light.is_obstacle(Rgb([0, 0, 0])));
    }

    #[test]
    fn transparent_pixels_read_as_white() {
        assert_eq!(over_white([0, 0, 0, 0]), Rgb([255, 255, 255]));
        assert_eq!(over_white([0, 0, 0, 255]), Rgb([0, 0, 0]));
        assert_eq!(over_white([0, 0, 0, 128]), Rgb([127, 127, 127]));
    }

    #[test]
    fn occupancy_maps_pixels_to_cells() {
        let mut image = RgbaImage::from_pixel(3, 2, image::Rgba([255, 255, 255, 255]));
        image.put_pixel(0, 0, image::Rgba([0, 0, 0, 255]));
        image.put_pixel(2, 1, image::Rgba([255, 0, 0, 255]));
        let floor = decode(&png(&image)).unwrap();

        let dark = floor.occupancy(&"dark".parse().unwrap(), &[]);
        assert_eq!(dark.cells(), &[true, false, false, false, false, true]);
        assert_eq!(dark.cell_size(), 0.05);

        let with_marker =
            floor.occupancy(&"dark".parse().unwrap(), &[ColourMatch::exact(Rgb::RED)]);
        assert_eq!(
            with_marker.cells(),
            &[true, false, false, false, false, false]
        );
    }

    #[test]
    fn sites_are_blob_centroids_in_world_coordinates() {
        let mut image = RgbaImage::from_pixel(10, 8, image::Rgba([255, 255, 255, 255]));
        // A 2×2 red blob with pixel columns 1..=2 and rows 1..=2 (from the top).
        for (x, y) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
            image.put_pixel(x, y, image::Rgba([255, 0, 0, 255]));
        }
        // A diagonal red pair, 8-connected, at the bottom right.
        image.put_pixel(8, 6, image::Rgba([255, 0, 0, 255]));
        image.put_pixel(9, 7, image::Rgba([255, 0, 0, 255]));
        let floor = decode(&png(&image)).unwrap().with_origin([1.0, -1.0]);

        let sites = floor.sites(&ColourMatch::exact(Rgb::RED));

        assert_eq!(sites.len(), 2);
        assert_eq!(sites[0].pixels, 4);
        assert_eq!(sites[1].pixels, 2);
        let expected = [
            [1.0 + 2.0 * 0.05, -1.0 + 6.0 * 0.05],
            [1.0 + 9.0 * 0.05, -1.0 + 1.0 * 0.05],
        ];
        for (site, expected) in sites.iter().zip(expected) {
            for axis in 0..2 {
                assert!(
                    (site.position[axis] - expected[axis]).abs() < 1e-12,
                    "site at {:?}, expected {expected:?}",
                    site.position
                );
            }
        }
        assert!(floor.sites(&ColourMatch::exact(Rgb::BLUE)).is_empty());
    }

    #[test]
    fn jpeg_decodes_with_tolerant_markers() {
        let mut image = image::RgbImage::from_pixel(32, 32, image::Rgb([255, 255, 255]));
        for y in 0..32 {
            for x in 0..8 {
                image.put_pixel(x, y, image::Rgb([0, 0, 0]));
            }
        }
        for y in 20..26 {
            for x in 20..26 {
                image.put_pixel(x, y, image::Rgb([255, 0, 0]));
            }
        }
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
            .encode_image(&image)
            .unwrap();
        let floor = FloorImage::from_bytes(Path::new("plan.jpg"), &bytes, 0.1).unwrap();
        let red = ColourMatch {
            colour: Rgb::RED,
            tolerance: 80,
        };

        let grid = floor.occupancy(&"dark".parse().unwrap(), &[red]);
        assert!(grid.is_blocked(3, 16));
        assert!(!grid.is_blocked(14, 16));
        assert!(!grid.is_blocked(22, 22));

        let sites = floor.sites(&red);
        assert_eq!(sites.len(), 1, "{sites:?}");
        let [x, y] = sites[0].position;
        assert!((x - 2.3).abs() < 0.05, "site x {x}, expected 2.3");
        assert!((y - (3.2 - 2.3)).abs() < 0.05, "site y {y}, expected 0.9");
    }

    #[test]
    fn rejects_text_named_png() {
        let error = decode(b"hello, this is not an image\n").unwrap_err();

        assert_eq!(
            error.to_string(),
            "plan.png: expected a PNG or JPEG image, but it looks like text"
        );
    }

    #[test]
    fn rejects_other_formats_and_truncated_png() {
        let gif = decode(b"GIF89a\x01\x00").unwrap_err().to_string();
        assert_eq!(
            gif,
            "plan.png: expected a PNG or JPEG image, but it is a GIF image; try converting it to PNG"
        );

        let empty = decode(b"").unwrap_err().to_string();
        assert_eq!(
            empty,
            "plan.png: expected a PNG or JPEG image, but the file is empty"
        );

        let whole = png(&RgbaImage::new(4, 4));
        let truncated = decode(&whole[..whole.len() / 2]).unwrap_err().to_string();
        assert!(
            truncated.starts_with("plan.png: cannot decode the PNG image: "),
            "{truncated}"
        );
    }

    #[test]
    fn rejects_images_past_the_size_limit() {
        // A valid PNG header announcing 5000×10 pixels; the loader stops at the header.
        let image = RgbaImage::new(MAX_IMAGE_SIDE + 904, 10);
        let error = decode(&png(&image)).unwrap_err();

        assert_eq!(
            error.to_string(),
            "plan.png: the image is 5000×10 pixels, larger than the limit of 4096×4096"
        );
    }

    #[test]
    fn rejects_bad_scale() {
        let error = decode_with_scale(-1.0).unwrap_err();

        assert_eq!(
            error.to_string(),
            "plan.png: the scale must be a positive number of metres per pixel, got -1"
        );
    }

    fn decode_with_scale(scale: f64) -> Result<FloorImage, ContextError> {
        FloorImage::from_bytes(Path::new("plan.png"), &png(&RgbaImage::new(1, 1)), scale)
    }

    proptest! {
        #[test]
        fn decoder_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoder_never_panics_on_corrupted_png(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut bytes = png(&RgbaImage::from_pixel(16, 16, image::Rgba([10, 200, 30, 255])));
            for (position, value) in flips {
                let index = position % bytes.len();
                bytes[index] = value;
            }
            let _ = decode(&bytes);
        }

        #[test]
        fn decoder_survives_jpeg_magic_then_noise(tail in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut bytes = vec![0xff, 0xd8, 0xff];
            bytes.extend(tail);
            let _ = decode(&bytes);
        }
    }
}
