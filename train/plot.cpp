// PNG line charts for training runs (loss curves), split into checking,
// layout, drawing and saving; the heatmap is in plot_heatmap.cpp. The
// drawing layer (canvas, text, ticks, axes, PNG files) is in plot_canvas.*,
// the tick arithmetic in plot_ticks.cpp. Without stb (ATTNLAB_HAVE_STB
// unset) both writers throw a clear error instead.
#include "train/plot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

#include "core/error.h"
#ifdef ATTNLAB_HAVE_STB
#include "train/plot_canvas.h"
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

using namespace draw;

namespace {

// -------------------------------------------------------------- line chart --

// One series with its non-finite points dropped.
struct Curve {
  std::string label;
  std::vector<double> x, y;
  Rgb colour;
  std::vector<double> lo = {}, hi = {};  // the band at each kept point (empty: none)
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
    const bool band = !s.band_lo.empty() || !s.band_hi.empty();
    check(!band || (s.band_lo.size() == s.x.size() && s.band_hi.size() == s.x.size()), "plot: series '", name,
          "' has a band of ", s.band_lo.size(), " low and ", s.band_hi.size(), " high values for ", s.x.size(),
          " points; expected one of each per point, or none");
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
      if (band) {  // a non-finite band edge shrinks to the line there
        c.lo.push_back(std::isfinite(s.band_lo[k]) && (!chart.log_y || s.band_lo[k] > 0) ? s.band_lo[k] : y);
        c.hi.push_back(std::isfinite(s.band_hi[k]) && (!chart.log_y || s.band_hi[k] > 0) ? s.band_hi[k] : y);
      }
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
    ys.insert(ys.end(), c.lo.begin(), c.lo.end());
    ys.insert(ys.end(), c.hi.begin(), c.hi.end());
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

// Bands as vertical spans: each pixel column whose centre lies between two
// points gets lo and hi interpolated there, and the span between them is
// tinted with the series' colour (faint, so overlapping bands and the
// lines drawn over them stay readable). Each column is tinted once.
void draw_band(Canvas& c, const LineLayout& L, const Curve& curve) {
  constexpr double kTint = 0.18;
  for (std::size_t k = 1; k < curve.x.size(); ++k) {
    const double px0 = L.x.to_pixel(curve.x[k - 1]), px1 = L.x.to_pixel(curve.x[k]);
    if (!(px1 > px0)) continue;
    const bool last = k + 1 == curve.x.size();
    // Columns whose centre is in [px0, px1), and px1 itself after the last point.
    for (int col = static_cast<int>(std::ceil(px0 - 0.5)); last ? col + 0.5 <= px1 : col + 0.5 < px1; ++col) {
      const double f = std::clamp((col + 0.5 - px0) / (px1 - px0), 0.0, 1.0);
      const double y_lo = L.y.to_pixel(curve.lo[k - 1] + f * (curve.lo[k] - curve.lo[k - 1]));
      const double y_hi = L.y.to_pixel(curve.hi[k - 1] + f * (curve.hi[k] - curve.hi[k - 1]));
      for (int row = static_cast<int>(std::floor(std::min(y_lo, y_hi))); row <= std::max(y_lo, y_hi); ++row)
        c.set_pixel(col, row, curve.colour, kTint);
    }
  }
}

void draw_curves(Canvas& c, const LineLayout& L, const std::vector<Curve>& curves, int s) {
  c.set_clip(L.left, L.top, L.right, L.bottom);
  for (const Curve& curve : curves)
    if (!curve.lo.empty()) draw_band(c, L, curve);
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

#endif  // ATTNLAB_HAVE_STB

}  // namespace attn::plot
