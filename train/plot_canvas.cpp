// The drawing layer of the charts (plot_canvas.h): labels, tick labels,
// axis ranges and the PNG save (the text itself is in plot_text.cpp). This
// file compiles stb_image_write's implementation, so it is the one place
// stb's writer is defined.
#include "train/plot_canvas.h"

#ifdef ATTNLAB_HAVE_STB
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "train/files.h"
// stb's single-file PNG writer trips a few warnings we cannot fix in its code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace attn::plot::draw {

// ------------------------------------------------------------------ labels --

void draw_label(Canvas& c, int x, int y, const std::string& s, int scale, Align h, Align v, Rgb colour) {
  const int w = text_width(s, scale);
  const int hgt = kCapHeight * scale;  // centre on the capitals, not the descenders
  int left = h == Align::start ? x : h == Align::centre ? x - w / 2 : x - w;
  left = std::clamp(left, 1, std::max(1, c.width() - w - 1));  // never cut off at the image's edge
  const int top = v == Align::start ? y : v == Align::centre ? y - hgt / 2 : y - hgt;
  c.text(left, top, s, colour, scale);
}

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

int font_scale(int width, int height) { return std::clamp(std::min(width, height) / 200, 1, 4); }

}  // namespace attn::plot::draw

#endif  // ATTNLAB_HAVE_STB
