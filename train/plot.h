// PNG charts for training runs: loss curves (line charts) and attention maps
// (heatmaps), drawn pixel by pixel into an RGB canvas and saved with
// stb_image_write. Text is drawn with a TrueType font through stb_truetype
// (DejaVu Sans, from Debian's fonts-dejavu-core) when its file is found, and
// with stb_easy_font, a tiny built-in bitmap font, when it is not.
//
// Both writers save "<path>.tmp" first and rename it over `path`, so a crash
// never leaves a half-written PNG behind. When attnlab was built without
// libstb-dev, `available()` is false and the writers throw attn::Error.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace attn::plot {

// True when this build can write PNGs (stb_image_write.h was found).
bool available();

// The font of all chart text from now on: a TrueType file, or "" for the
// built-in bitmap font. False (and the bitmap font) when the file cannot be
// read or is not a font. Before the first call, charts use $ATTNLAB_FONT if
// set ("" = bitmap), else DejaVu Sans where Debian installs it, else bitmap.
bool use_font(const std::string& ttf_path);
// What chart text is drawn with, for reports: "DejaVuSans.ttf (TrueType)",
// "built-in bitmap font".
std::string font_description();
inline constexpr const char* kDefaultFont = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

// One curve: points (x[i], y[i]) joined in the order given. Points where x or
// y is NaN or infinite are skipped (a diverged run still gets a plot).
// An optional band (band_lo[i] .. band_hi[i] at x[i], e.g. the mean +- one
// standard deviation over seeds) is shaded faintly in the series' colour
// under all the lines; leave both empty for none.
struct Series {
  std::string label;
  std::vector<double> x, y;
  std::vector<double> band_lo = {}, band_hi = {};
};

struct LineChart {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;  // a log axis needs every finite value > 0
  std::vector<Series> series;
  int width = 900, height = 560;
};

// Labelled axes with tick values, a legend with one colour per series, a title.
void write_line_chart(const std::string& path, const LineChart& chart);

struct Heatmap {
  std::string title, x_label, y_label;
  std::vector<float> values;  // rows x cols, row-major
  int rows = 0, cols = 0;
  std::vector<std::string> row_names, col_names;  // optional tick labels (e.g. characters of a prompt)
  int cell = 0;                                   // pixels per cell, 0 = choose automatically
};

// A colour scale (dark = low, bright = high) with a colourbar and min/max labels.
// NaN/inf cells are drawn grey and left out of the min/max.
void write_heatmap(const std::string& path, const Heatmap& map);

// The colour a line chart gives its i-th series (10 distinct ones, then they
// repeat), as {r, g, b}. Tests use it to find a series in the image.
struct Rgb {
  unsigned char r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};
Rgb series_color(std::size_t index);

// Tick positions, exposed for tests. Both work without stb.
namespace detail {
// "Nice" values k * step in [lo, hi] with step = 1, 2 or 5 x 10^n, at most
// `max_ticks` of them (at least 2 when lo < hi).
std::vector<double> linear_ticks(double lo, double hi, int max_ticks);
// Ticks for a log axis over [lo, hi] (lo > 0): powers of ten when the range
// spans enough decades, else 1/2/5 x 10^n, else linear nice values.
std::vector<double> log_ticks(double lo, double hi, int max_ticks);
}  // namespace detail

}  // namespace attn::plot
