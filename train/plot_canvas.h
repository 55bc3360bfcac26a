// The drawing layer under the charts of plot.cpp: an RGB canvas with
// anti-aliased lines and dots, text (a TrueType font or the built-in bitmap
// font, plot_text.cpp), axis ticks and their labels, the data-to-pixel
// mapping of an axis, and the atomic PNG save. Internal to train/: only the
// plot*.cpp files include it, and only in builds that found stb
// (ATTNLAB_HAVE_STB).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "train/plot.h"

namespace attn::plot::draw {

inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kText{30, 30, 30};
inline constexpr Rgb kFrame{90, 90, 90};
inline constexpr Rgb kGrid{228, 228, 228};
inline constexpr Rgb kMissing{150, 150, 150};  // heatmap cells holding NaN/inf

// Images larger than this are almost certainly a mistake (and memory hungry).
inline constexpr int kMaxSide = 16384;

// ------------------------------------------------------------------- text --

// Text is laid out on the grid of stb_easy_font, the built-in bitmap font:
// capitals are 7 "font units" tall, descenders (g, p, y) reach 2 units
// lower, and each unit is scale x scale pixels. A TrueType font (DejaVu
// Sans, plot::use_font) is drawn to the same measure, its capitals
// kCapHeight * scale pixels tall, so layouts fit either font.
inline constexpr int kCapHeight = 7;
inline constexpr int kTextHeight = 9;  // capitals plus descenders

// The bitmap font only has printable ASCII (and indexes a table by the
// byte, so anything else would read out of bounds): other bytes become
// '?', one per UTF-8 character. The TrueType font draws any character it has.
std::string printable(const std::string& s);
// Width in pixels in the current font (including one unit of trailing spacing).
int text_width(const std::string& s, int scale);
// `s` if it fits in max_width pixels, else its start followed by "..".
std::string fit_text(const std::string& s, int scale, int max_width);

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
  void text(int x, int y, const std::string& s, Rgb c, int scale, bool vertical = false);


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

void draw_label(Canvas& c, int x, int y, const std::string& s, int scale, Align h, Align v,
                Rgb colour = kText);
// Text turned a quarter left, centred on (x_left .., y_centre).
void draw_vertical_label(Canvas& c, int x_left, int y_centre, const std::string& s, int scale);

// ------------------------------------------------------------ tick labels --

struct Tick {
  double value;
  std::string label;
};

// "%.<digits>g" with a short exponent (1e6, not 1e+06).
std::string format_g(double v, int digits);
// Tick values for [lo, hi] with labels that line up (0.5, 1.0, 1.5).
std::vector<Tick> make_ticks(double lo, double hi, bool log, int max_ticks);
int widest_label(const std::vector<Tick>& ticks, int scale);

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
std::pair<double, double> axis_range(const std::vector<double>& values, bool log, double pad);

// ------------------------------------------------------------------ files --

// Encode as PNG in memory, then write "<path>.tmp" and rename it to `path`,
// so a reader never sees a half-written image.
void save_png(const std::string& path, const Canvas& canvas);

// Bigger images get bigger text: 2 for the default 900 x 560.
int font_scale(int width, int height);

}  // namespace attn::plot::draw
