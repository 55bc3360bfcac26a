// The heatmap (attention maps) as a PNG: checking, the colour scale, cell
// labels, layout and drawing. The drawing layer is plot_canvas.*; the line
// chart lives in plot.cpp, and so does the writer's stand-in for builds
// without stb, which throws a clear error.
#ifdef ATTNLAB_HAVE_STB
#include "train/plot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

#include "core/error.h"
#include "train/plot_canvas.h"

namespace attn::plot {

using namespace draw;

namespace {

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

}  // namespace attn::plot

#endif  // ATTNLAB_HAVE_STB
