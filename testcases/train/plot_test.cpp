// PNG charts: the files are real PNGs of the requested size, the pixels are
// where they should be (when stb_image.h is around to decode them), and bad
// input is refused with messages that say what was wrong.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/plot.h"
#include "testcases/error_of.h"

// Decoding is only needed here, so this test file compiles stb_image itself.
#if defined(ATTNLAB_HAVE_STB) && __has_include(<stb_image.h>)
#define PLOT_TEST_CAN_DECODE 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#pragma GCC diagnostic pop
#endif

using namespace attn;
namespace fs = std::filesystem;

namespace {

// A fresh folder for one test, removed again when the test ends.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("attnlab_plot_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& file) const { return path / file; }
};

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// A PNG starts with an 8-byte signature, then the IHDR chunk: 4 bytes length,
// "IHDR", then width and height as big-endian 32-bit integers.
struct PngSize {
  uint32_t width = 0, height = 0;
};

PngSize png_size(const std::string& bytes) {
  const std::string signature = "\x89PNG\r\n\x1a\n";
  EXPECT_GE(bytes.size(), 24u);
  if (bytes.size() < 24) return {};
  EXPECT_EQ(bytes.substr(0, 8), signature);
  EXPECT_EQ(bytes.substr(12, 4), "IHDR");
  auto be32 = [&](std::size_t at) {
    uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
    return v;
  };
  return {be32(16), be32(20)};
}

plot::LineChart two_curves() {
  plot::LineChart c;
  c.title = "loss";
  c.x_label = "step";
  c.y_label = "cross-entropy";
  plot::Series rising{"rising", {}, {}}, falling{"falling", {}, {}};
  for (int i = 0; i <= 100; ++i) {
    rising.x.push_back(i);
    rising.y.push_back(1.0 + 0.03 * i);
    falling.x.push_back(i);
    falling.y.push_back(4.0 - 0.025 * i);
  }
  c.series = {rising, falling};
  return c;
}

#define SKIP_WITHOUT_STB() \
  if (!plot::available()) GTEST_SKIP() << "attnlab was built without stb: no PNG plots"

}  // namespace

// ------------------------------------------------------------------ ticks --

TEST(PlotTicks, LinearTicksAreOneTwoOrFiveTimesAPowerOfTen) {
  EXPECT_EQ(plot::detail::linear_ticks(0, 1000, 6), (std::vector<double>{0, 200, 400, 600, 800, 1000}));
  EXPECT_EQ(plot::detail::linear_ticks(0, 10, 11), (std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  const std::vector<double> t = plot::detail::linear_ticks(1.13, 3.87, 8);
  ASSERT_GE(t.size(), 2u);
  EXPECT_LE(t.size(), 8u);
  EXPECT_GE(t.front(), 1.13);
  EXPECT_LE(t.back(), 3.87);
  EXPECT_NEAR(t[1] - t[0], 0.5, 1e-12);  // 2.74 / 7 = 0.39 rounds up to the nice 0.5
  EXPECT_DOUBLE_EQ(t[0], 1.5);
  // Zero is exactly zero, never -1e-17.
  const std::vector<double> z = plot::detail::linear_ticks(-0.3, 0.3, 7);
  EXPECT_NE(std::find(z.begin(), z.end(), 0.0), z.end());
  // A narrow range far from zero still gets two labels.
  EXPECT_GE(plot::detail::linear_ticks(0.95, 1.85, 2).size(), 2u);
}

TEST(PlotTicks, LogTicksUseDecadesThenOneTwoFive) {
  EXPECT_EQ(plot::detail::log_ticks(1, 10000, 8), (std::vector<double>{1, 10, 100, 1000, 10000}));
  EXPECT_EQ(plot::detail::log_ticks(0.8, 30, 8), (std::vector<double>{1, 2, 5, 10, 20}));
  // Twelve decades with room for six labels: every second decade.
  EXPECT_EQ(plot::detail::log_ticks(1e-6, 1e6, 7).size(), 7u);
  // Less than a decade (a loss from 3.5 to 1.2): plain nice values, all positive.
  const std::vector<double> t = plot::detail::log_ticks(1.2, 3.5, 8);
  ASSERT_GE(t.size(), 3u);
  for (double v : t) EXPECT_GT(v, 0);
}

TEST(PlotTicks, RefusesEmptyRanges) {
  EXPECT_NE(error_of([] { plot::detail::linear_ticks(2, 2, 5); }).find("lo < hi"), std::string::npos);
  EXPECT_NE(error_of([] { plot::detail::log_ticks(-1, 10, 5); }).find("0 < lo < hi"), std::string::npos);
}

TEST(PlotColors, TenDistinctSeriesColours) {
  for (std::size_t i = 0; i < 10; ++i)
    for (std::size_t j = i + 1; j < 10; ++j) {
      EXPECT_FALSE(plot::series_color(i) == plot::series_color(j)) << i << " " << j;
    }
}

// ------------------------------------------------------------- no stb --

TEST(PlotWithoutStb, WritersExplainHowToGetPlots) {
  if (plot::available()) GTEST_SKIP() << "this build has stb";
  const std::string e = error_of([] { plot::write_line_chart("/tmp/x.png", two_curves()); });
  EXPECT_NE(e.find("install libstb-dev"), std::string::npos) << e;
  EXPECT_NE(error_of([] { plot::write_heatmap("/tmp/x.png", {}); }).find("stb_image_write.h"), std::string::npos);
}

// ------------------------------------------------------------- the files --

TEST(PlotPng, LineChartIsAPngOfTheRequestedSize) {
  SKIP_WITHOUT_STB();
  const TempDir dir("line");
  plot::LineChart c = two_curves();
  c.width = 640;
  c.height = 400;
  const fs::path png = dir / "loss.png";
  plot::write_line_chart(png.string(), c);
  const PngSize size = png_size(read_bytes(png));
  EXPECT_EQ(size.width, 640u);
  EXPECT_EQ(size.height, 400u);
  EXPECT_FALSE(fs::exists(png.string() + ".tmp")) << "the temporary file is renamed, not left behind";
}

TEST(PlotPng, HeatmapIsAPngSizedByItsCells) {
  SKIP_WITHOUT_STB();
  const TempDir dir("heat");
  plot::Heatmap h;
  h.rows = 3;
  h.cols = 4;
  h.values = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  h.cell = 16;
  plot::write_heatmap((dir / "small.png").string(), h);
  const PngSize small = png_size(read_bytes(dir / "small.png"));
  h.cell = 36;
  plot::write_heatmap((dir / "big.png").string(), h);
  const PngSize big = png_size(read_bytes(dir / "big.png"));
  // 20 more pixels per cell: 4 columns wider, 3 rows taller.
  EXPECT_EQ(big.width - small.width, 4u * 20u);
  EXPECT_EQ(big.height - small.height, 3u * 20u);
  // Automatic cells give a reasonably sized picture, labels and all.
  h.cell = 0;
  h.title = "attention";
  h.row_names = {"a", "b", "c"};
  h.col_names = {"a", "b", "c", "\n"};  // a newline (or any non-ASCII) is drawn as '?'
  plot::write_heatmap((dir / "auto.png").string(), h);
  const PngSize automatic = png_size(read_bytes(dir / "auto.png"));
  EXPECT_GE(automatic.width, 200u);
  EXPECT_LE(automatic.width, 1200u);
}

TEST(PlotPng, NonFinitePointsAreSkippedAndLeaveTheScaleAlone) {
  SKIP_WITHOUT_STB();
  const TempDir dir("nan");
  plot::LineChart clean = two_curves();
  plot::LineChart noisy = clean;
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  // Bad points anywhere: in y, in x, at the ends; the finite points are the same.
  auto& s = noisy.series[0];
  s.x.insert(s.x.begin() + 10, 10.5);
  s.y.insert(s.y.begin() + 10, nan);
  s.x.insert(s.x.begin() + 20, inf);
  s.y.insert(s.y.begin() + 20, 2.0);
  s.x.push_back(101);
  s.y.push_back(-inf);
  noisy.log_y = clean.log_y = true;  // NaN is not "non-positive": no log-axis error
  plot::write_line_chart((dir / "clean.png").string(), clean);
  plot::write_line_chart((dir / "noisy.png").string(), noisy);
  EXPECT_EQ(read_bytes(dir / "clean.png"), read_bytes(dir / "noisy.png"));

  // A series with nothing finite left (a run that diverged at once) still plots.
  plot::LineChart diverged;
  diverged.series = {{"diverged", {0, 1, 2}, {nan, nan, inf}}};
  EXPECT_NO_THROW(plot::write_line_chart((dir / "diverged.png").string(), diverged));
  plot::Heatmap h;
  h.rows = 2;
  h.cols = 2;
  h.values = {0.5f, std::nanf(""), 1.0f, 0.0f};
  EXPECT_NO_THROW(plot::write_heatmap((dir / "nan_heat.png").string(), h));
}

// ----------------------------------------------------------------- errors --

TEST(PlotErrors, LineChartInputIsChecked) {
  SKIP_WITHOUT_STB();
  const TempDir dir("errors");
  const std::string path = (dir / "x.png").string();
  plot::LineChart c;
  c.title = "loss";
  std::string e = error_of([&] { plot::write_line_chart(path, c); });
  EXPECT_NE(e.find("'loss' has no series"), std::string::npos) << e;

  c.series = {{"val", {}, {}}};
  e = error_of([&] { plot::write_line_chart(path, c); });
  EXPECT_NE(e.find("series 'val' has no points"), std::string::npos) << e;

  c.series = {{"val", {1, 2, 3}, {1, 2}}};
  e = error_of([&] { plot::write_line_chart(path, c); });
  EXPECT_NE(e.find("series 'val' has 3 x values but 2 y values"), std::string::npos) << e;

  c.series = {{"ok", {1, 2}, {1, 2}}, {"val", {1, 2, 3}, {3, -0.5, 1}}};
  c.log_y = true;
  e = error_of([&] { plot::write_line_chart(path, c); });
  EXPECT_NE(e.find("log_y needs positive y values"), std::string::npos) << e;
  EXPECT_NE(e.find("series 'val' has y = -0.5 at index 1"), std::string::npos) << e;

  c.log_y = false;
  c.log_x = true;
  c.series = {{"train", {0, 1}, {1, 2}}};
  e = error_of([&] { plot::write_line_chart(path, c); });
  EXPECT_NE(e.find("series 'train' has x = 0 at index 0"), std::string::npos) << e;

  c.log_x = false;
  c.width = 50;
  e = error_of([&] { plot::write_line_chart(path, c); });
  EXPECT_NE(e.find("50x560"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(path)) << "nothing is written when the input is refused";
}

TEST(PlotErrors, HeatmapInputIsChecked) {
  SKIP_WITHOUT_STB();
  const TempDir dir("heat_errors");
  const std::string path = (dir / "x.png").string();
  plot::Heatmap h;
  h.title = "attn";
  h.rows = 2;
  h.cols = 3;
  h.values = {1, 2, 3, 4, 5};
  std::string e = error_of([&] { plot::write_heatmap(path, h); });
  EXPECT_NE(e.find("2 x 3 = 6 cells but has 5 values"), std::string::npos) << e;

  h.values.push_back(6);
  h.row_names = {"a"};
  e = error_of([&] { plot::write_heatmap(path, h); });
  EXPECT_NE(e.find("1 row names for 2 rows"), std::string::npos) << e;

  h.row_names.clear();
  h.rows = 0;
  e = error_of([&] { plot::write_heatmap(path, h); });
  EXPECT_NE(e.find("is 0 x 3"), std::string::npos) << e;
}

TEST(PlotErrors, UnwritablePathIsNamedAndNothingIsLeftBehind) {
  SKIP_WITHOUT_STB();
  const TempDir dir("unwritable");
  const std::string path = (dir / "no_such_folder" / "loss.png").string();
  const std::string e = error_of([&] { plot::write_line_chart(path, two_curves()); });
  EXPECT_NE(e.find("plot: "), std::string::npos) << e;
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

// ----------------------------------------------------------------- pixels --

#ifdef PLOT_TEST_CAN_DECODE
namespace {

struct Image {
  int width = 0, height = 0;
  std::vector<unsigned char> rgb;
  plot::Rgb at(int x, int y) const {
    const unsigned char* p = &rgb[(static_cast<std::size_t>(y) * width + x) * 3];
    return {p[0], p[1], p[2]};
  }
};

Image load(const fs::path& p) {
  Image img;
  int channels = 0;
  unsigned char* data = stbi_load(p.string().c_str(), &img.width, &img.height, &channels, 3);
  EXPECT_NE(data, nullptr) << stbi_failure_reason();
  if (data) {
    img.rgb.assign(data, data + static_cast<std::size_t>(img.width) * img.height * 3);
    stbi_image_free(data);
  }
  return img;
}

int luminance(plot::Rgb c) { return 299 * c.r + 587 * c.g + 114 * c.b; }

// The bounding box of all pixels of exactly colour c.
struct Box {
  int x0 = 1 << 30, y0 = 1 << 30, x1 = -1, y1 = -1;
  long count = 0;
};
Box find_colour(const Image& img, plot::Rgb c) {
  Box b;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      if (img.at(x, y) == c) {
        b.x0 = std::min(b.x0, x), b.y0 = std::min(b.y0, y);
        b.x1 = std::max(b.x1, x), b.y1 = std::max(b.y1, y);
        ++b.count;
      }
  return b;
}

}  // namespace

TEST(PlotPixels, LineChartDrawsEachSeriesInItsColourOnWhite) {
  SKIP_WITHOUT_STB();
  const TempDir dir("pixels");
  const fs::path png = dir / "loss.png";
  plot::write_line_chart(png.string(), two_curves());
  const Image img = load(png);
  ASSERT_EQ(img.width, 900);
  ASSERT_EQ(img.height, 560);
  const plot::Rgb white{255, 255, 255};
  EXPECT_EQ(img.at(1, 1), white);
  EXPECT_EQ(img.at(img.width - 2, img.height - 2), white);

  for (int i = 0; i < 2; ++i) {
    const Box b = find_colour(img, plot::series_color(i));
    // Far more than a legend swatch: the curve crosses most of the plot.
    EXPECT_GT(b.count, 500) << "series " << i;
    EXPECT_GT(b.x1 - b.x0, img.width / 2) << "series " << i;
  }
  // The rising series: its leftmost pixels are lower (larger y) than its
  // rightmost ones; the falling one the other way round.
  auto mean_y_in_columns = [&](plot::Rgb c, int x0, int x1) {
    double sum = 0;
    int n = 0;
    for (int y = 0; y < img.height; ++y)
      for (int x = x0; x < x1; ++x)
        if (img.at(x, y) == c) sum += y, ++n;
    return n ? sum / n : -1.0;
  };
  const int a = img.width / 4, b = 3 * img.width / 4;
  EXPECT_GT(mean_y_in_columns(plot::series_color(0), a, a + 20), mean_y_in_columns(plot::series_color(0), b, b + 20));
  EXPECT_LT(mean_y_in_columns(plot::series_color(1), a, a + 20), mean_y_in_columns(plot::series_color(1), b, b + 20));
}

TEST(PlotPixels, HeatmapBrightestCellIsTheLargestValue) {
  SKIP_WITHOUT_STB();
  const TempDir dir("heat_pixels");
  const int rows = 6, cols = 8, cell = 20;
  // Three maps with the same values except where the maximum (1.0) sits; the
  // minimum (0.0) stays at (4, 1). Everything outside the grid is the same in
  // all three, so A and B (maximum in opposite corners) differ exactly over
  // the grid's corner cells: that locates the grid.
  auto make = [&](int max_r, int max_c) {
    plot::Heatmap h;
    h.title = "attention";
    h.x_label = "key";
    h.y_label = "query";
    h.rows = rows;
    h.cols = cols;
    h.cell = cell;
    h.values.assign(rows * cols, 0.3f);
    for (int i = 0; i < rows * cols; ++i) h.values[i] += 0.005f * (i % 7);  // some texture
    h.values[4 * cols + 1] = 0.0f;
    h.values[max_r * cols + max_c] = 1.0f;
    return h;
  };
  plot::write_heatmap((dir / "a.png").string(), make(0, 0));
  plot::write_heatmap((dir / "b.png").string(), make(rows - 1, cols - 1));
  plot::write_heatmap((dir / "c.png").string(), make(2, 5));
  const Image a = load(dir / "a.png"), b = load(dir / "b.png"), c = load(dir / "c.png");
  ASSERT_EQ(a.width, b.width);
  ASSERT_EQ(a.height, b.height);
  EXPECT_EQ(a.at(1, 1), (plot::Rgb{255, 255, 255}));

  Box grid;
  for (int y = 0; y < a.height; ++y)
    for (int x = 0; x < a.width; ++x)
      if (!(a.at(x, y) == b.at(x, y)))
        grid.x0 = std::min(grid.x0, x), grid.y0 = std::min(grid.y0, y), grid.x1 = std::max(grid.x1, x),
        grid.y1 = std::max(grid.y1, y);
  ASSERT_EQ(grid.x1 - grid.x0 + 1, cols * cell);
  ASSERT_EQ(grid.y1 - grid.y0 + 1, rows * cell);

  // In C, the centre of cell (2, 5) is brighter than every other cell's centre,
  // and the minimum's cell (4, 1) is darker than every other.
  auto centre = [&](int r, int col) { return c.at(grid.x0 + col * cell + cell / 2, grid.y0 + r * cell + cell / 2); };
  for (int r = 0; r < rows; ++r)
    for (int col = 0; col < cols; ++col) {
      if (!(r == 2 && col == 5)) {
        EXPECT_GT(luminance(centre(2, 5)), luminance(centre(r, col))) << r << "," << col;
      }
      if (!(r == 4 && col == 1)) {
        EXPECT_LT(luminance(centre(4, 1)), luminance(centre(r, col))) << r << "," << col;
      }
    }
}
#endif  // PLOT_TEST_CAN_DECODE
