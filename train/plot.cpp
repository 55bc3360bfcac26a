// PNG charts, drawn by hand into an RGB pixel buffer.
//
// The pieces, from the bottom up:
//   * ticks:   "nice" tick values (1, 2, 5 x 10^n; decades on log axes);
//   * Canvas:  a pixel buffer with set_pixel / fill_rect / line / dot / text;
//   * Axis:    maps a data value to a pixel coordinate (linear or log);
//   * the two charts, each split into layout, drawing and saving.
// Only the tick code works without stb; everything that draws is compiled
// only when the build found stb_image_write.h (ATTNLAB_HAVE_STB).
#include "train/plot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <tuple>
#include <utility>

#include "core/error.h"

#ifdef ATTNLAB_HAVE_STB
#include "train/files.h"
// stb's single-file libraries: this is the one .cpp that compiles the
// writer's implementation. stb_easy_font is all `static`, so it can be
// included anywhere; both trip a few warnings we cannot fix in their code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#include <stb_easy_font.h>
#pragma GCC diagnostic pop
#endif

namespace attn::plot {

// ---------------------------------------------------------------- colours --

// Ten well-separated hues (the common "category 10" set): neighbours in the
// list differ in hue and lightness, so curves stay apart even when printed.
Rgb series_color(std::size_t index) {
  static constexpr std::array<Rgb, 10> kPalette{{
      {31, 119, 180},   // blue
      {255, 127, 14},   // orange
      {44, 160, 44},    // green
      {214, 39, 40},    // red
      {148, 103, 189},  // purple
      {140, 86, 75},    // brown
      {227, 119, 194},  // pink
      {127, 127, 127},  // grey
      {188, 189, 34},   // olive
      {23, 190, 207},   // cyan
  }};
  return kPalette[index % kPalette.size()];
}

// ------------------------------------------------------------------ ticks --

namespace detail {
namespace {

// The smallest step of the form 1, 2 or 5 x 10^n that is >= raw (raw > 0).
double nice_step_at_least(double raw) {
  const double decade = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0}) {
    // The tolerance keeps 0.2000000001 from being rounded up to 0.5.
    if (m * decade >= raw * (1 - 1e-9)) return m * decade;
  }
  return 10 * decade;
}

// The largest nice step strictly below `step` (step is itself nice).
double nice_step_below(double step) { return nice_step_at_least(step * 0.4 * (1 + 1e-6)); }

// The multiples k * step inside [lo, hi]. Computing k * step (rather than
// adding step repeatedly) keeps rounding errors from piling up.
std::vector<double> multiples_in(double lo, double hi, double step) {
  std::vector<double> ticks;
  const double eps = step * 1e-9;
  const double first = std::ceil((lo - eps) / step), last = std::floor((hi + eps) / step);
  // (The cap only matters for absurd inputs, e.g. a step below the
  // precision of lo, where k and k + 1 would be the same double.)
  for (int i = 0; first + i <= last && i < 1000; ++i) {
    double v = (first + i) * step;
    if (std::fabs(v) < eps) v = 0;  // print "0", never "-0.0" or "1e-17"
    ticks.push_back(v);
  }
  return ticks;
}

}  // namespace

std::vector<double> linear_ticks(double lo, double hi, int max_ticks) {
  check(std::isfinite(lo) && std::isfinite(hi) && lo < hi && std::isfinite(hi - lo),
        "plot: ticks need a finite range lo < hi, got [", lo, ", ", hi, "]");
  check(max_ticks >= 2, "plot: ticks need max_ticks >= 2, got ", max_ticks);
  // max_ticks values span max_ticks - 1 gaps, so this step never gives too many.
  double step = nice_step_at_least((hi - lo) / (max_ticks - 1));
  std::vector<double> ticks = multiples_in(lo, hi, step);
  // A range that straddles a big step can catch only one multiple (0.95..1.85
  // with step 1); a finer step then gives the axis at least two labels.
  for (int tries = 0; ticks.size() < 2 && tries < 60; ++tries) {
    step = nice_step_below(step);
    ticks = multiples_in(lo, hi, step);
  }
  if (ticks.size() < 2) return {lo, hi};  // only for ranges at the edge of double precision
  return ticks;
}

std::vector<double> log_ticks(double lo, double hi, int max_ticks) {
  check(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && lo < hi,
        "plot: log ticks need a range 0 < lo < hi, got [", lo, ", ", hi, "]");
  check(max_ticks >= 2, "plot: ticks need max_ticks >= 2, got ", max_ticks);
  const double eps = 1e-9;
  const int first = static_cast<int>(std::ceil(std::log10(lo) - eps));
  const int last = static_cast<int>(std::floor(std::log10(hi) + eps));

  // Wide ranges: powers of ten, every k-th decade when there are too many.
  const int decades = last - first + 1;
  if (decades >= 3) {
    const int every = (decades + max_ticks - 1) / max_ticks;
    std::vector<double> ticks;
    for (int e = first; e <= last; e += every) ticks.push_back(std::pow(10.0, e));
    return ticks;
  }
  // Narrower ranges: 1, 2 and 5 in each decade (1, 2, 5, 10, 20, ...).
  std::vector<double> ticks;
  for (int e = first - 1; e <= last; ++e) {
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = m * std::pow(10.0, e);
      if (v >= lo * (1 - eps) && v <= hi * (1 + eps)) ticks.push_back(v);
    }
  }
  if (ticks.size() >= 3 && static_cast<int>(ticks.size()) <= max_ticks) return ticks;
  if (decades == 2) return {std::pow(10.0, first), std::pow(10.0, last)};
  // Less than a decade (a loss going from 3.5 to 1.2): plain nice values,
  // still placed on the log scale.
  return linear_ticks(lo, hi, max_ticks);
}

}  // namespace detail

#ifndef ATTNLAB_HAVE_STB

// --------------------------------------------------------- built without stb --

namespace {
[[noreturn]] void no_stb() {
  throw Error("plot: attnlab was built without stb_image_write.h; install libstb-dev to get PNG plots");
}
}  // namespace

bool available() { return false; }
void write_line_chart(const std::string&, const LineChart&) { no_stb(); }
void write_heatmap(const std::string&, const Heatmap&) { no_stb(); }

#else  // ATTNLAB_HAVE_STB

bool available() { return true; }

namespace {

constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kText{30, 30, 30};
constexpr Rgb kFrame{90, 90, 90};
constexpr Rgb kGrid{228, 228, 228};
constexpr Rgb kMissing{150, 150, 150};  // heatmap cells holding NaN/inf

// Images larger than this are almost certainly a mistake (and memory hungry).
constexpr int kMaxSide = 16384;

// ------------------------------------------------------------------- text --

// stb_easy_font draws glyphs from small quads on a grid of "font units":
// capitals are 7 units tall, descenders (g, p, y) reach 2 units lower. We
// draw each unit as a scale x scale block of pixels.
constexpr int kCapHeight = 7;
constexpr int kTextHeight = 9;  // capitals plus descenders

// The font only has printable ASCII (and indexes a table by the byte, so
// anything else would read out of bounds): other bytes become '?', one per
// UTF-8 character.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (ch >= 32 && ch < 127) out += static_cast<char>(ch);
    else if (ch < 0x80 || ch >= 0xC0) out += '?';  // skip UTF-8 continuation bytes
  }
  return out;
}

// Width in pixels (the font's width includes one unit of trailing spacing,
// which doubles as a small gap after the text).
int text_width(const std::string& s, int scale) {
  std::string t = printable(s);
  return stb_easy_font_width(t.data()) * scale;
}

// `s` if it fits in max_width pixels, else its start followed by "..".
std::string fit_text(const std::string& s, int scale, int max_width) {
  std::string t = printable(s);
  if (text_width(t, scale) <= max_width) return t;
  while (!t.empty() && text_width(t + "..", scale) > max_width) t.pop_back();
  return t + "..";
}

// ----------------------------------------------------------------- canvas --

// An RGB image with the drawing operations the charts need. Coordinates are
// pixels, x to the right and y downwards; pixel (i, j) covers the square
// [i, i+1) x [j, j+1), so its centre is (i + 0.5, j + 0.5).
class Canvas {
 public:
  Canvas(int width, int height) : w_(width), h_(height), rgb_(static_cast<std::size_t>(width) * height * 3, 255) {
    clear_clip();
  }
  int width() const { return w_; }
  int height() const { return h_; }
  const unsigned char* data() const { return rgb_.data(); }

  // Drawing outside [x0, x1) x [y0, y1) is ignored: keeps curves inside the plot.
  void set_clip(int x0, int y0, int x1, int y1) { clip_ = {x0, y0, x1, y1}; }
  void clear_clip() { clip_ = {0, 0, w_, h_}; }

  Rgb get_pixel(int x, int y) const {
    const unsigned char* p = &rgb_[(static_cast<std::size_t>(y) * w_ + x) * 3];
    return {p[0], p[1], p[2]};
  }

  // Paint one pixel; alpha < 1 mixes the colour with what is already there,
  // which is how the edges of lines and dots get smooth (anti-aliased).
  void set_pixel(int x, int y, Rgb c, double alpha = 1.0) {
    if (x < clip_[0] || y < clip_[1] || x >= clip_[2] || y >= clip_[3] || alpha <= 0) return;
    unsigned char* p = &rgb_[(static_cast<std::size_t>(y) * w_ + x) * 3];
    const double a = std::min(alpha, 1.0);
    p[0] = static_cast<unsigned char>(std::lround(c.r * a + p[0] * (1 - a)));
    p[1] = static_cast<unsigned char>(std::lround(c.g * a + p[1] * (1 - a)));
    p[2] = static_cast<unsigned char>(std::lround(c.b * a + p[2] * (1 - a)));
  }

  // The pixels [x0, x1) x [y0, y1).
  void fill_rect(int x0, int y0, int x1, int y1, Rgb c) {
    for (int y = std::max(y0, 0); y < std::min(y1, h_); ++y)
      for (int x = std::max(x0, 0); x < std::min(x1, w_); ++x) set_pixel(x, y, c);
  }

  // A one-pixel border just inside [x0, x1) x [y0, y1).
  void outline_rect(int x0, int y0, int x1, int y1, Rgb c) {
    fill_rect(x0, y0, x1, y0 + 1, c);
    fill_rect(x0, y1 - 1, x1, y1, c);
    fill_rect(x0, y0, x0 + 1, y1, c);
    fill_rect(x1 - 1, y0, x1, y1, c);
  }

  // A line `thickness` pixels wide from (x0, y0) to (x1, y1). Each pixel near
  // the segment gets the colour in proportion to how much of it the line
  // covers, estimated from the distance of its centre to the segment.
  void line(double x0, double y0, double x1, double y1, Rgb c, double thickness) {
    const double r = thickness / 2;
    const int ix0 = static_cast<int>(std::floor(std::min(x0, x1) - r - 1));
    const int ix1 = static_cast<int>(std::ceil(std::max(x0, x1) + r + 1));
    const int iy0 = static_cast<int>(std::floor(std::min(y0, y1) - r - 1));
    const int iy1 = static_cast<int>(std::ceil(std::max(y0, y1) + r + 1));
    for (int y = std::max(iy0, clip_[1]); y < std::min(iy1, clip_[3]); ++y)
      for (int x = std::max(ix0, clip_[0]); x < std::min(ix1, clip_[2]); ++x) {
        const double d = distance_to_segment(x + 0.5, y + 0.5, x0, y0, x1, y1);
        set_pixel(x, y, c, r + 0.5 - d);
      }
  }

  // A filled disc (a marker on a data point), smoothed like `line`.
  void dot(double cx, double cy, double radius, Rgb c) { line(cx, cy, cx, cy, c, 2 * radius); }

  // Text with its top-left corner at (x, y). With `vertical` the text is
  // turned a quarter left (read bottom to top, as on a y axis) and (x, y) is
  // the top-left of the turned box: kTextHeight*scale wide, width tall.
  void text(int x, int y, const std::string& s, Rgb c, int scale, bool vertical = false) {
    std::string t = printable(s);
    if (t.empty()) return;
    // stb_easy_font writes 4 vertices of 16 bytes per quad; the busiest
    // glyph ('X') has 11 quads, so 768 bytes a character always suffice.
    std::vector<char> quads(t.size() * 768 + 64);
    const int n = stb_easy_font_print(0, 0, t.data(), nullptr, quads.data(), static_cast<int>(quads.size()));
    const int length = stb_easy_font_width(t.data());  // in font units
    for (int q = 0; q < n; ++q) {
      // Vertex 0 is the quad's top-left corner, vertex 2 its bottom-right.
      float v0[2], v2[2];
      std::memcpy(v0, &quads[q * 64], sizeof v0);
      std::memcpy(v2, &quads[q * 64 + 32], sizeof v2);
      const int u0 = static_cast<int>(v0[0]), w0 = static_cast<int>(v0[1]);
      const int u1 = static_cast<int>(v2[0]), w1 = static_cast<int>(v2[1]);
      if (!vertical) {
        fill_rect(x + u0 * scale, y + w0 * scale, x + u1 * scale, y + w1 * scale, c);
      } else {
        // Turning left: along-the-text u goes up the image, down-the-glyph w goes right.
        fill_rect(x + w0 * scale, y + (length - u1) * scale, x + w1 * scale, y + (length - u0) * scale, c);
      }
    }
  }

 private:
  static double distance_to_segment(double px, double py, double x0, double y0, double x1, double y1) {
    const double dx = x1 - x0, dy = y1 - y0;
    const double len2 = dx * dx + dy * dy;
    // Project the point onto the segment, clamped to its ends.
    const double t = len2 > 0 ? std::clamp(((px - x0) * dx + (py - y0) * dy) / len2, 0.0, 1.0) : 0.0;
    return std::hypot(px - (x0 + t * dx), py - (y0 + t * dy));
  }

  int w_, h_;
  std::vector<unsigned char> rgb_;
  std::array<int, 4> clip_{};
};

// Text placement relative to an anchor point, so callers can say "centred
// under this tick" or "right-aligned before the axis".
enum class Align { start, centre, end };

void draw_label(Canvas& c, int x, int y, const std::string& s, int scale, Align h, Align v, Rgb colour = kText) {
  const int w = text_width(s, scale);
  const int hgt = kCapHeight * scale;  // centre on the capitals, not the descenders
  int left = h == Align::start ? x : h == Align::centre ? x - w / 2 : x - w;
  left = std::clamp(left, 1, std::max(1, c.width() - w - 1));  // never cut off at the image's edge
  const int top = v == Align::start ? y : v == Align::centre ? y - hgt / 2 : y - hgt;
  c.text(left, top, s, colour, scale);
}

// Text turned a quarter left, centred on (x_left .., y_centre).
void draw_vertical_label(Canvas& c, int x_left, int y_centre, const std::string& s, int scale) {
  c.text(x_left, y_centre - text_width(s, scale) / 2, s, kText, scale, true);
}

// ------------------------------------------------------------ tick labels --

// "%g" writes 1e+06; "1e6" is shorter and reads the same.
std::string tidy_exponent(std::string s) {
  const auto e = s.find('e');
  if (e == std::string::npos) return s;
  std::string mantissa = s.substr(0, e), exponent = s.substr(e + 1);
  bool negative = false;
  if (!exponent.empty() && (exponent[0] == '+' || exponent[0] == '-')) {
    negative = exponent[0] == '-';
    exponent.erase(0, 1);
  }
  while (exponent.size() > 1 && exponent[0] == '0') exponent.erase(0, 1);
  return mantissa + "e" + (negative ? "-" : "") + exponent;
}

std::string format_g(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return tidy_exponent(buf);
}

// A linear tick: as many decimals as the step needs, so all labels on an
// axis line up (0.5, 1.0, 1.5 rather than 0.5, 1, 1.5).
std::string linear_tick_label(double v, double step) {
  if (v == 0) return "0";
  if (std::fabs(v) >= 1e6 || std::fabs(v) < 1e-4) return format_g(v, 3);
  const int decimals = step >= 1 ? 0 : std::min(6, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

struct Tick {
  double value;
  std::string label;
};

std::vector<Tick> make_ticks(double lo, double hi, bool log, int max_ticks) {
  std::vector<Tick> ticks;
  if (log) {
    for (double v : detail::log_ticks(lo, hi, max_ticks)) ticks.push_back({v, format_g(v, 4)});
  } else {
    const std::vector<double> values = detail::linear_ticks(lo, hi, max_ticks);
    const double step = values.size() > 1 ? values[1] - values[0] : 1.0;
    for (double v : values) ticks.push_back({v, linear_tick_label(v, step)});
  }
  return ticks;
}

int widest_label(const std::vector<Tick>& ticks, int scale) {
  int w = 0;
  for (const Tick& t : ticks) w = std::max(w, text_width(t.label, scale));
  return w;
}

// ------------------------------------------------------------------- axes --

// Maps data values to pixel coordinates along one axis. On a log axis equal
// ratios get equal distances, so we interpolate log10(v) instead of v.
struct Axis {
  double lo = 0, hi = 1;      // the data range shown
  bool log = false;
  double pixel_lo = 0, pixel_hi = 1;  // where lo and hi land (for y, pixel_lo is the bottom)

  double to_pixel(double v) const {
    const double t = log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo))
                         : (v - lo) / (hi - lo);
    return pixel_lo + t * (pixel_hi - pixel_lo);
  }
};

// The range [lo, hi] an axis shows for `values` (all finite, > 0 when log),
// widened by `pad` of its span on each side so curves do not sit on the frame.
std::pair<double, double> axis_range(const std::vector<double>& values, bool log, double pad) {
  if (values.empty()) return log ? std::pair{1.0, 10.0} : std::pair{0.0, 1.0};
  const auto [min_it, max_it] = std::minmax_element(values.begin(), values.end());
  // On a log axis the padding is done in log10 space.
  double lo = log ? std::log10(*min_it) : *min_it;
  double hi = log ? std::log10(*max_it) : *max_it;
  // One value, or a flat line (equal up to rounding): show a band around it.
  if (hi - lo <= 1e-9 * std::max(std::fabs(lo), std::fabs(hi))) {
    const double mid = (lo + hi) / 2, half = log ? 0.5 : (mid != 0 ? std::fabs(mid) * 0.1 : 1.0);
    lo = mid - half;
    hi = mid + half;
  }
  const double extra = (hi - lo) * pad;
  lo -= extra;
  hi += extra;
  if (log) return {std::pow(10.0, lo), std::pow(10.0, hi)};
  check(std::isfinite(hi - lo), "plot: values from ", lo, " to ", hi, " are too far apart to plot");
  return {lo, hi};
}

// ------------------------------------------------------------------ files --

// Encode as PNG in memory, then write "<path>.tmp" and rename it to `path`,
// so a reader never sees a half-written image.
void save_png(const std::string& path, const Canvas& canvas) {
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), size);
  };
  const int ok = stbi_write_png_to_func(append, &png, canvas.width(), canvas.height(), 3, canvas.data(),
                                        canvas.width() * 3);
  check(ok != 0 && !png.empty(), "plot: encoding the PNG for '", path, "' failed");
  try {
    write_text_atomically(path, png);
  } catch (const Error& e) {
    fail("plot: ", e.what());
  }
}

// Bigger images get bigger text: 2 for the default 900 x 560.
int font_scale(int width, int height) { return std::clamp(std::min(width, height) / 200, 1, 4); }

// -------------------------------------------------------------- line chart --

// One series with its non-finite points dropped.
struct Curve {
  std::string label;
  std::vector<double> x, y;
  Rgb colour;
};

std::string series_name(const Series& s, std::size_t i) {
  return s.label.empty() ? str("series ", i) : s.label;
}

// Check the chart and keep the finite points of each series.
std::vector<Curve> checked_curves(const LineChart& chart) {
  check(chart.width >= 200 && chart.height >= 150 && chart.width <= kMaxSide && chart.height <= kMaxSide,
        "plot: line chart '", chart.title, "' is ", chart.width, "x", chart.height, " px; expected 200x150 to ",
        kMaxSide, "x", kMaxSide);
  check(!chart.series.empty(), "plot: line chart '", chart.title, "' has no series; expected at least one");
  std::vector<Curve> curves;
  for (std::size_t i = 0; i < chart.series.size(); ++i) {
    const Series& s = chart.series[i];
    const std::string name = series_name(s, i);
    check(!s.x.empty() || !s.y.empty(), "plot: series '", name, "' has no points; expected at least one");
    check(s.x.size() == s.y.size(), "plot: series '", name, "' has ", s.x.size(), " x values but ", s.y.size(),
          " y values; expected one y per x");
    Curve c{name, {}, {}, series_color(i)};
    for (std::size_t k = 0; k < s.x.size(); ++k) {
      const double x = s.x[k], y = s.y[k];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;  // NaN/inf: skipped, not plotted
      check(!chart.log_x || x > 0, "plot: log_x needs positive x values, but series '", name, "' has x = ", x,
            " at index ", k);
      check(!chart.log_y || y > 0, "plot: log_y needs positive y values, but series '", name, "' has y = ", y,
            " at index ", k);
      c.x.push_back(x);
      c.y.push_back(y);
    }
    curves.push_back(std::move(c));
  }
  return curves;
}

// Where the plot area sits and how the axes map into it.
struct LineLayout {
  int left, top, right, bottom;  // plot area [left, right) x [top, bottom)
  Axis x, y;
  std::vector<Tick> x_ticks, y_ticks;
};

// `legend_column` px are kept free right of the plot when the legend goes there.
LineLayout layout_line_chart(const LineChart& chart, const std::vector<Curve>& curves, int s, int legend_column) {
  std::vector<double> xs, ys;
  for (const Curve& c : curves) {
    xs.insert(xs.end(), c.x.begin(), c.x.end());
    ys.insert(ys.end(), c.y.begin(), c.y.end());
  }
  LineLayout L;
  // x usually counts steps: no padding, so the curve starts at the frame.
  std::tie(L.x.lo, L.x.hi) = axis_range(xs, chart.log_x, 0.0);
  std::tie(L.y.lo, L.y.hi) = axis_range(ys, chart.log_y, 0.04);
  L.x.log = chart.log_x;
  L.y.log = chart.log_y;

  // Vertical: margin, title, plot, tick marks, tick labels, x label, margin.
  const int margin = 5 * s, gap = 3 * s, tick_len = 3 * s;
  L.top = margin + (chart.title.empty() ? kTextHeight * s : kTextHeight * (s + 1) + 3 * gap);
  L.bottom = chart.height - margin - (chart.x_label.empty() ? 0 : kTextHeight * s + gap) - kTextHeight * s - gap -
             tick_len;

  // The y ticks depend only on the plot's height: at most one per 20 font units.
  const int plot_h = L.bottom - L.top;
  L.y_ticks = make_ticks(L.y.lo, L.y.hi, L.y.log, std::clamp(plot_h / (20 * s), 2, 10));

  // Horizontal: margin, y label (turned), tick labels, tick marks, plot, margin.
  L.left = margin + (chart.y_label.empty() ? 0 : kTextHeight * s + 2 * gap) + widest_label(L.y_ticks, s) + gap +
           tick_len;
  L.right = chart.width - 12 * s - legend_column;  // 12 * s: room for half of the last x tick label
  check(L.right - L.left >= 40 && plot_h >= 40, "plot: line chart '", chart.title, "' is too small (", chart.width,
        "x", chart.height, " px) for its labels; expected a larger width/height");

  L.x.pixel_lo = L.left + 0.5;
  L.x.pixel_hi = L.right - 1.5;
  L.y.pixel_lo = L.bottom - 1.5;  // y grows upwards: lo is at the bottom
  L.y.pixel_hi = L.top + 0.5;

  // x ticks: start with about one per 40 font units, and use fewer while
  // neighbouring labels would touch.
  const int plot_w = L.right - L.left;
  for (int max_ticks = std::clamp(plot_w / (40 * s), 2, 12);; --max_ticks) {
    L.x_ticks = make_ticks(L.x.lo, L.x.hi, L.x.log, max_ticks);
    double spacing = plot_w;
    for (std::size_t i = 1; i < L.x_ticks.size(); ++i)
      spacing = std::min(spacing, L.x.to_pixel(L.x_ticks[i].value) - L.x.to_pixel(L.x_ticks[i - 1].value));
    if (max_ticks == 2 || widest_label(L.x_ticks, s) + 4 * s < spacing) break;
  }
  return L;
}

void draw_grid(Canvas& c, const LineLayout& L) {
  for (const Tick& t : L.x_ticks) {
    const int px = static_cast<int>(L.x.to_pixel(t.value));
    c.fill_rect(px, L.top, px + 1, L.bottom, kGrid);
  }
  for (const Tick& t : L.y_ticks) {
    const int py = static_cast<int>(L.y.to_pixel(t.value));
    c.fill_rect(L.left, py, L.right, py + 1, kGrid);
  }
}

void draw_axes(Canvas& c, const LineLayout& L, int s) {
  const int gap = 3 * s, tick_len = 3 * s;
  c.outline_rect(L.left - 1, L.top - 1, L.right + 1, L.bottom + 1, kFrame);
  for (const Tick& t : L.x_ticks) {
    const int px = static_cast<int>(L.x.to_pixel(t.value));
    c.fill_rect(px, L.bottom, px + 1, L.bottom + tick_len, kFrame);
    draw_label(c, px, L.bottom + tick_len + gap, t.label, s, Align::centre, Align::start);
  }
  for (const Tick& t : L.y_ticks) {
    const int py = static_cast<int>(L.y.to_pixel(t.value));
    c.fill_rect(L.left - tick_len, py, L.left, py + 1, kFrame);
    draw_label(c, L.left - tick_len - gap, py, t.label, s, Align::end, Align::centre);
  }
}

void draw_curves(Canvas& c, const LineLayout& L, const std::vector<Curve>& curves, int s) {
  c.set_clip(L.left, L.top, L.right, L.bottom);
  const double thickness = 1.0 + s * 0.5;
  for (const Curve& curve : curves) {
    for (std::size_t k = 1; k < curve.x.size(); ++k)
      c.line(L.x.to_pixel(curve.x[k - 1]), L.y.to_pixel(curve.y[k - 1]), L.x.to_pixel(curve.x[k]),
             L.y.to_pixel(curve.y[k]), curve.colour, thickness);
    // Sparse series (an eval every N steps, or a single point) get a marker
    // on each point so they do not vanish or look like a straight ruler.
    if (curve.x.size() <= 40)
      for (std::size_t k = 0; k < curve.x.size(); ++k)
        c.dot(L.x.to_pixel(curve.x[k]), L.y.to_pixel(curve.y[k]), 1.5 * s + 0.5, curve.colour);
  }
  c.clear_clip();
}

// ----------------------------------------------------------------- legend --

// The legend's text and size: a colour swatch and a label per series.
struct Legend {
  std::vector<std::string> labels;
  int width = 0, height = 0;
};

constexpr int legend_pad(int s) { return 4 * s; }
constexpr int legend_swatch(int s) { return 10 * s; }
constexpr int legend_row(int s) { return (kTextHeight + 3) * s; }

Legend measure_legend(const std::vector<Curve>& curves, int s, int max_label_width) {
  Legend g;
  int label_w = 0;
  for (const Curve& curve : curves) {
    g.labels.push_back(fit_text(curve.label, s, max_label_width));
    label_w = std::max(label_w, text_width(g.labels.back(), s));
  }
  g.width = legend_pad(s) + legend_swatch(s) + legend_pad(s) + label_w + legend_pad(s);
  g.height = 2 * legend_pad(s) + static_cast<int>(curves.size()) * legend_row(s) - 3 * s;
  return g;
}

// How many curve pixels (neither background nor grid) a box would cover.
int ink_under(const Canvas& c, int x0, int y0, int w, int h) {
  int count = 0;
  for (int y = std::max(y0, 0); y < std::min(y0 + h, c.height()); ++y)
    for (int x = std::max(x0, 0); x < std::min(x0 + w, c.width()); ++x) {
      const Rgb p = c.get_pixel(x, y);
      if (!(p == kWhite) && !(p == kGrid)) ++count;
    }
  return count;
}

// The plot corner where the legend hides the fewest curve pixels (ties go
// to the first of: top right, top left, bottom right, bottom left), and that count.
std::pair<std::pair<int, int>, int> quietest_corner(const Canvas& c, const LineLayout& L, const Legend& g, int s) {
  const int inset = 4 * s;
  const std::array<std::pair<int, int>, 4> corners{{{L.right - inset - g.width, L.top + inset},
                                                    {L.left + inset, L.top + inset},
                                                    {L.right - inset - g.width, L.bottom - inset - g.height},
                                                    {L.left + inset, L.bottom - inset - g.height}}};
  std::pair<int, int> best = corners[0];
  int best_ink = std::numeric_limits<int>::max();
  for (const auto& corner : corners) {
    const int ink = ink_under(c, corner.first, corner.second, g.width, g.height);
    if (ink < best_ink) best = corner, best_ink = ink;
  }
  return {best, best_ink};
}

void draw_legend(Canvas& c, const Legend& g, const std::vector<Curve>& curves, int x0, int y0, int s) {
  const int pad = legend_pad(s);
  c.fill_rect(x0, y0, x0 + g.width, y0 + g.height, kWhite);
  c.outline_rect(x0, y0, x0 + g.width, y0 + g.height, kFrame);
  for (std::size_t i = 0; i < curves.size(); ++i) {
    const int mid = y0 + pad + static_cast<int>(i) * legend_row(s) + kCapHeight * s / 2;
    c.fill_rect(x0 + pad, mid - s, x0 + pad + legend_swatch(s), mid + s + 1, curves[i].colour);
    draw_label(c, x0 + pad + legend_swatch(s) + pad, mid, g.labels[i], s, Align::start, Align::centre);
  }
}

// Title centred on the image, axis labels centred on the plot area.
void draw_titles(Canvas& c, const LineLayout& L, const LineChart& chart, int s) {
  const int margin = 5 * s;
  if (!chart.title.empty())
    draw_label(c, c.width() / 2, margin, fit_text(chart.title, s + 1, c.width() - 2 * margin), s + 1,
               Align::centre, Align::start);
  if (!chart.x_label.empty())
    draw_label(c, (L.left + L.right) / 2, c.height() - margin - kTextHeight * s,
               fit_text(chart.x_label, s, L.right - L.left), s, Align::centre, Align::start);
  if (!chart.y_label.empty())
    draw_vertical_label(c, margin, (L.top + L.bottom) / 2, fit_text(chart.y_label, s, L.bottom - L.top), s);
}

// ----------------------------------------------------------------- heatmap --

// Dark-to-bright colour scale (close to the "inferno" map): black, purple,
// red, orange, pale yellow. Brightness rises along it, so the largest values
// stand out, and it stays readable in greyscale.
Rgb heat_colour(double t) {
  static constexpr std::array<Rgb, 5> kStops{{{0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164}}};
  t = std::clamp(t, 0.0, 1.0) * (kStops.size() - 1);
  const std::size_t i = std::min(static_cast<std::size_t>(t), kStops.size() - 2);
  const double f = t - static_cast<double>(i);
  auto mix = [f](unsigned char a, unsigned char b) { return static_cast<unsigned char>(std::lround(a + (b - a) * f)); };
  return {mix(kStops[i].r, kStops[i + 1].r), mix(kStops[i].g, kStops[i + 1].g), mix(kStops[i].b, kStops[i + 1].b)};
}

void check_heatmap(const Heatmap& m) {
  check(m.rows > 0 && m.cols > 0, "plot: heatmap '", m.title, "' is ", m.rows, " x ", m.cols,
        "; expected at least one row and one column");
  check(static_cast<std::size_t>(m.rows) * m.cols == m.values.size(), "plot: heatmap '", m.title, "' is ", m.rows,
        " x ", m.cols, " = ", static_cast<std::size_t>(m.rows) * m.cols, " cells but has ", m.values.size(),
        " values; expected rows * cols values, row-major");
  check(m.row_names.empty() || m.row_names.size() == static_cast<std::size_t>(m.rows), "plot: heatmap '", m.title,
        "' has ", m.row_names.size(), " row names for ", m.rows, " rows; expected one per row or none");
  check(m.col_names.empty() || m.col_names.size() == static_cast<std::size_t>(m.cols), "plot: heatmap '", m.title,
        "' has ", m.col_names.size(), " column names for ", m.cols, " columns; expected one per column or none");
  check(m.cell >= 0, "plot: heatmap '", m.title, "' has cell = ", m.cell,
        "; expected pixels per cell >= 1, or 0 for automatic");
}

// About 560 px for the grid, cells between 1 and 40 px; with names to show,
// cells big enough for one character each when that stays under ~900 px;
// and never a grid under 240 px, so a tiny map still has room for its labels.
int auto_cell(const Heatmap& m) {
  const int n = std::max(m.rows, m.cols);
  int cell = std::clamp(560 / n, 1, 40);
  if (!m.row_names.empty() || !m.col_names.empty()) cell = std::max(cell, std::min(14, 900 / n));
  return std::max(cell, (240 + n - 1) / n);
}

// One label per `stride` cells, so labels `extent` px long never overlap.
int label_stride(int extent, int cell) { return std::max(1, (extent + cell - 1) / cell); }

// The labels along one side: the given names, or indices at nice intervals.
struct CellLabels {
  std::vector<std::pair<int, std::string>> at;  // (cell index, text)
  int longest = 0;                              // px, at the label scale
  bool turned = false;  // column names too wide for their cells are written bottom to top
};

CellLabels cell_labels(const std::vector<std::string>& names, int n, int cell, int scale, bool along_x) {
  CellLabels out;
  if (!names.empty()) {
    for (const std::string& name : names) out.longest = std::max(out.longest, text_width(name, scale));
    // Along x, names that fit in a cell are written flat; longer ones are
    // turned, so then the text height is what must fit.
    out.turned = along_x && out.longest + scale > cell;
    const int extent = (along_x && !out.turned ? out.longest : kTextHeight * scale) + scale;
    const int stride = label_stride(extent, cell);
    for (int i = 0; i < n; i += stride) out.at.emplace_back(i, names[i]);
    return out;
  }
  std::vector<double> ticks{0.0};
  if (n > 1) {
    const int room = along_x ? 12 * scale * 3 : 14 * scale;  // px per label we aim for
    ticks = detail::linear_ticks(0, n - 1, std::clamp(n * cell / room, 2, n));
  }
  for (double v : ticks)
    if (v == std::round(v)) out.at.emplace_back(static_cast<int>(v), str(static_cast<int>(v)));
  for (const auto& [i, text] : out.at) out.longest = std::max(out.longest, text_width(text, scale));
  return out;
}

}  // namespace

// ------------------------------------------------------------ the writers --

void write_line_chart(const std::string& path, const LineChart& chart) {
  const std::vector<Curve> curves = checked_curves(chart);
  const int s = font_scale(chart.width, chart.height);
  auto draw_chart = [&](const LineLayout& layout) {
    Canvas canvas(chart.width, chart.height);
    draw_grid(canvas, layout);
    draw_curves(canvas, layout, curves, s);
    draw_axes(canvas, layout, s);
    draw_titles(canvas, layout, chart, s);
    return canvas;
  };

  // First try the legend inside the plot, in its emptiest corner (we look at
  // the drawn curves to find it). When even that corner would hide more than
  // a sliver of data (many series, or curves everywhere), draw the chart
  // again with a narrower plot and the legend in a column on its right.
  LineLayout layout = layout_line_chart(chart, curves, s, 0);
  Canvas canvas = draw_chart(layout);
  Legend legend = measure_legend(curves, s, (layout.right - layout.left) / 2);
  auto [corner, ink] = quietest_corner(canvas, layout, legend, s);
  if (ink > legend.width * legend.height / 50) {
    legend = measure_legend(curves, s, chart.width / 4);
    layout = layout_line_chart(chart, curves, s, legend.width + 2 * s);
    canvas = draw_chart(layout);
    corner = {layout.right + 6 * s, layout.top};
  }
  draw_legend(canvas, legend, curves, corner.first, corner.second, s);
  save_png(path, canvas);
}

void write_heatmap(const std::string& path, const Heatmap& m) {
  check_heatmap(m);
  const int cell = m.cell > 0 ? m.cell : auto_cell(m);
  const int s = 2;                            // title and axis labels
  const int ls = cell >= 14 ? 2 : 1;          // row/column labels follow the cell size
  const int margin = 5 * s, gap = 3 * s, bar_w = 8 * s;

  // The colour scale spans the finite values; NaN/inf cells are drawn grey.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (float v : m.values)
    if (std::isfinite(v)) lo = std::min<double>(lo, v), hi = std::max<double>(hi, v);
  if (lo > hi) lo = 0, hi = 1;  // nothing finite at all
  const std::string lo_text = format_g(lo, 3), hi_text = format_g(hi, 3);

  const CellLabels row_labels = cell_labels(m.row_names, m.rows, cell, ls, false);
  const CellLabels col_labels = cell_labels(m.col_names, m.cols, cell, ls, true);
  const int col_label_h = col_labels.turned ? col_labels.longest : kTextHeight * ls;

  // Sizes of the parts, left to right and top to bottom.
  const long grid_w = static_cast<long>(m.cols) * cell, grid_h = static_cast<long>(m.rows) * cell;
  const int y_label_w = m.y_label.empty() ? 0 : kTextHeight * s + gap;
  const int bar_label_w = std::max(text_width(lo_text, s), text_width(hi_text, s));
  const long content_w = y_label_w + row_labels.longest + gap + grid_w + 2 * gap + bar_w + gap + bar_label_w;
  const int title_h = m.title.empty() ? 0 : kTextHeight * (s + 1) + 2 * gap;
  const int x_label_h = m.x_label.empty() ? 0 : kTextHeight * s + gap;
  const long width = std::max({content_w, static_cast<long>(text_width(m.title, s + 1)),
                               static_cast<long>(text_width(m.x_label, s))}) + 2 * margin;
  const long height =
      margin + title_h + std::max<long>(grid_h, 2 * kTextHeight * s) + gap + col_label_h + gap + x_label_h + margin;
  check(width <= kMaxSide && height <= kMaxSide, "plot: heatmap '", m.title, "' would be ", width, "x", height,
        " px; expected at most ", kMaxSide, " per side (use a smaller cell)");

  Canvas c(static_cast<int>(width), static_cast<int>(height));
  const int left = margin + static_cast<int>((width - 2 * margin - content_w) / 2);  // centre under a wide title
  const int gx = left + y_label_w + row_labels.longest + gap;  // grid's top-left corner
  const int gy = margin + title_h;

  // The cells.
  for (int r = 0; r < m.rows; ++r)
    for (int col = 0; col < m.cols; ++col) {
      const double v = m.values[static_cast<std::size_t>(r) * m.cols + col];
      const Rgb colour = !std::isfinite(v) ? kMissing : heat_colour(hi > lo ? (v - lo) / (hi - lo) : 0.5);
      c.fill_rect(gx + col * cell, gy + r * cell, gx + (col + 1) * cell, gy + (r + 1) * cell, colour);
    }
  c.outline_rect(gx - 1, gy - 1, gx + static_cast<int>(grid_w) + 1, gy + static_cast<int>(grid_h) + 1, kFrame);

  // Row labels right-aligned before the grid, column labels under it.
  for (const auto& [r, text] : row_labels.at)
    draw_label(c, gx - gap, gy + r * cell + cell / 2, text, ls, Align::end, Align::centre);
  const int below_grid = gy + static_cast<int>(grid_h) + gap;
  for (const auto& [col, text] : col_labels.at) {
    const int cx = gx + col * cell + cell / 2;
    if (!col_labels.turned) {
      draw_label(c, cx, below_grid, text, ls, Align::centre, Align::start);
    } else {  // turned text ends just under the grid, like a y-axis label
      c.text(cx - kCapHeight * ls / 2, below_grid + col_labels.longest - text_width(text, ls), text, kText, ls, true);
    }
  }

  // The colourbar: bright (max) at the top, dark (min) at the bottom.
  const int bx = gx + static_cast<int>(grid_w) + 2 * gap;
  const int bar_h = std::max(static_cast<int>(grid_h), 2 * kTextHeight * s);
  for (int y = 0; y < bar_h; ++y)
    c.fill_rect(bx, gy + y, bx + bar_w, gy + y + 1, heat_colour(1.0 - static_cast<double>(y) / std::max(bar_h - 1, 1)));
  c.outline_rect(bx - 1, gy - 1, bx + bar_w + 1, gy + bar_h + 1, kFrame);
  draw_label(c, bx + bar_w + gap, gy, hi_text, s, Align::start, Align::start);
  draw_label(c, bx + bar_w + gap, gy + bar_h, lo_text, s, Align::start, Align::end);

  // Title and axis labels.
  if (!m.title.empty())
    draw_label(c, c.width() / 2, margin, fit_text(m.title, s + 1, c.width() - 2 * margin), s + 1, Align::centre,
               Align::start);
  if (!m.x_label.empty())
    draw_label(c, gx + static_cast<int>(grid_w) / 2, c.height() - margin - kTextHeight * s, m.x_label, s,
               Align::centre, Align::start);
  if (!m.y_label.empty())  // shortened if a small explicit cell makes the grid shorter than the label
    draw_vertical_label(c, left, gy + bar_h / 2, fit_text(m.y_label, s, bar_h), s);
  save_png(path, c);
}

#endif  // ATTNLAB_HAVE_STB

}  // namespace attn::plot
