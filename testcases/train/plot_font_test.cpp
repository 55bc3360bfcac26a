// Chart text through a TrueType font (DejaVu Sans) and through the built-in
// bitmap font when no font file is found; the ± std band of a series.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/plot.h"

// Decoding is only needed here; static, so plot_test.cpp's copy does not clash.
#if defined(ATTNLAB_HAVE_STB) && __has_include(<stb_image.h>)
#define FONT_TEST_CAN_DECODE 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#pragma GCC diagnostic pop
#endif

using namespace attn;
namespace fs = std::filesystem;

#ifdef FONT_TEST_CAN_DECODE
namespace {

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("attnlab_font_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
    plot::use_font(plot::kDefaultFont);  // the next test starts from the default
  }
  fs::path operator/(const std::string& file) const { return path / file; }
};

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
  EXPECT_NE(data, nullptr);
  if (data) {
    img.rgb.assign(data, data + static_cast<std::size_t>(img.width) * img.height * 3);
    stbi_image_free(data);
  }
  return img;
}

plot::LineChart chart_with_title() {
  plot::LineChart c;
  c.title = "Validation loss by attention variant";
  c.x_label = "step";
  c.y_label = "loss";
  plot::Series s{"mha", {0, 1, 2, 3}, {3, 2.5, 2.2, 2.1}};
  c.series = {s};
  return c;
}

// In the title's rows: pixels of the text colour itself (30, 30, 30) and
// grey levels between it and white, which only anti-aliased glyphs make.
struct TitleInk {
  int solid = 0, grey = 0;
};
TitleInk title_ink(const Image& img) {
  TitleInk ink;
  for (int y = 0; y < 34; ++y)
    for (int x = 0; x < img.width; ++x) {
      const plot::Rgb p = img.at(x, y);
      if (p.r != p.g || p.g != p.b) continue;
      if (p.r == 30) ++ink.solid;
      else if (p.r > 30 && p.r < 255) ++ink.grey;
    }
  return ink;
}

}  // namespace

TEST(PlotFont, TrueTypeTextIsAntiAliased) {
  if (!plot::available()) GTEST_SKIP() << "built without stb";
  if (!fs::exists(plot::kDefaultFont)) GTEST_SKIP() << plot::kDefaultFont << " is not installed (fonts-dejavu-core)";
  const TempDir dir("truetype");
  ASSERT_TRUE(plot::use_font(plot::kDefaultFont));
  EXPECT_NE(plot::font_description().find("DejaVuSans.ttf"), std::string::npos) << plot::font_description();
  plot::write_line_chart((dir / "tt.png").string(), chart_with_title());
  const TitleInk ink = title_ink(load(dir / "tt.png"));
  EXPECT_GT(ink.grey, 200);   // smooth edges
  EXPECT_GT(ink.solid, 50);   // and solid strokes
}

TEST(PlotFont, BitmapFontWhenNoFontFileIsFound) {
  if (!plot::available()) GTEST_SKIP() << "built without stb";
  const TempDir dir("bitmap");
  EXPECT_FALSE(plot::use_font((dir / "missing.ttf").string()));
  EXPECT_EQ(plot::font_description(), "built-in bitmap font (stb_easy_font)");
  std::ofstream(dir / "not_a_font.ttf") << "this is plain text, not a TrueType file";
  EXPECT_FALSE(plot::use_font((dir / "not_a_font.ttf").string()));
  EXPECT_FALSE(plot::use_font(""));
  plot::write_line_chart((dir / "bitmap.png").string(), chart_with_title());
  const TitleInk ink = title_ink(load(dir / "bitmap.png"));
  EXPECT_GT(ink.solid, 200);  // blocky text: every pixel of it fully covered
  EXPECT_EQ(ink.grey, 0);
}

TEST(PlotFont, NonAsciiLabelsDrawInEitherFont) {
  if (!plot::available()) GTEST_SKIP() << "built without stb";
  const TempDir dir("utf8");
  plot::LineChart c = chart_with_title();
  c.title = "loss ± std — naïve \xff broken byte";
  for (const std::string& font : {std::string(plot::kDefaultFont), std::string()}) {
    plot::use_font(font);
    plot::write_line_chart((dir / "u.png").string(), c);
    EXPECT_EQ(load(dir / "u.png").width, 900) << font;
  }
}

TEST(PlotBand, ShadesBetweenLowAndHighUnderTheLine) {
  if (!plot::available()) GTEST_SKIP() << "built without stb";
  const TempDir dir("band");
  plot::LineChart c;
  plot::Series s{"mean", {}, {}};
  for (int i = 0; i <= 20; ++i) {
    s.x.push_back(i);
    s.y.push_back(2.0);
    s.band_lo.push_back(1.5);
    s.band_hi.push_back(2.5);
  }
  plot::Series other{"reference", {0, 20}, {0.0, 4.0}};  // fixes the y range at 0..4
  c.series = {s, other};
  plot::write_line_chart((dir / "band.png").string(), c);
  const Image img = load(dir / "band.png");
  // The tint: the series' colour at 18 % over white (or over a grid line, 228).
  const plot::Rgb line = plot::series_color(0);
  auto tint_over = [&](int under) {
    auto mix = [&](int c) { return static_cast<unsigned char>(std::lround(c * 0.18 + under * 0.82)); };
    return plot::Rgb{mix(line.r), mix(line.g), mix(line.b)};
  };
  auto is_tint = [&](plot::Rgb p) { return p == tint_over(255) || p == tint_over(228); };
  // In the middle column: tint above and below the line, a quarter of the
  // plot's height in all (1.0 of the 4.0 shown).
  const int x = img.width / 2;
  int tinted = 0, line_y = -1;
  for (int y = 0; y < img.height; ++y) {
    if (is_tint(img.at(x, y))) ++tinted;
    if (img.at(x, y) == line) line_y = y;
  }
  ASSERT_GE(line_y, 0);
  EXPECT_GT(tinted, img.height / 6);
  EXPECT_LT(tinted, img.height / 3);
  EXPECT_TRUE(is_tint(img.at(x, line_y - 20)));
  EXPECT_TRUE(is_tint(img.at(x, line_y + 20)));

  c.series[0].band_hi.pop_back();
  try {
    plot::write_line_chart((dir / "bad.png").string(), c);
    ADD_FAILURE() << "a band of the wrong size was drawn";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has a band of 21 low and 20 high values for 21 points"), std::string::npos)
        << e.what();
  }
}
#endif  // FONT_TEST_CAN_DECODE
