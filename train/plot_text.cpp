// Text in the charts: a string becomes a mask of coverage values (0..255),
// drawn by a TrueType font (stb_truetype, anti-aliased) or by the built-in
// bitmap font (stb_easy_font, blocky), and the canvas paints the mask in
// one colour, flat or turned a quarter left. Both fonts are measured to the
// grid of plot_canvas.h (capitals kCapHeight * scale pixels tall), so the
// chart layouts never depend on which one is in use.
#include "train/plot.h"

#ifndef ATTNLAB_HAVE_STB

namespace attn::plot {
bool use_font(const std::string&) { return false; }
std::string font_description() { return "none (attnlab was built without stb: no PNG plots)"; }
}  // namespace attn::plot

#else  // ATTNLAB_HAVE_STB

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>

#include "train/plot_canvas.h"
// stb's single-file libraries trip a few warnings we cannot fix in their
// code. stb_easy_font is all `static`; STBTT_STATIC makes stb_truetype so.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <stb_easy_font.h>
#define STBTT_STATIC
#define STB_TRUETYPE_IMPLEMENTATION
#include <stb_truetype.h>
#pragma GCC diagnostic pop

namespace attn::plot {

namespace {

// A loaded TrueType font: the file's bytes (stb_truetype reads them in
// place) and the height of a capital 'H' in font units, which sets the
// size: capitals of kCapHeight * scale pixels, like the bitmap font's.
struct TrueTypeFont {
  std::vector<unsigned char> bytes;
  stbtt_fontinfo info{};
  int cap_units = 0;
  std::string name;
};

struct FontState {
  std::mutex mutex;
  bool chosen = false;
  std::unique_ptr<TrueTypeFont> font;  // null: the bitmap font
};

FontState& state() {
  static FontState s;
  return s;
}

std::unique_ptr<TrueTypeFont> load_font(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (path.empty() || !f) return nullptr;
  auto font = std::make_unique<TrueTypeFont>();
  font->bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  const int offset = stbtt_GetFontOffsetForIndex(font->bytes.data(), 0);
  if (font->bytes.size() < 12 || offset < 0 || !stbtt_InitFont(&font->info, font->bytes.data(), offset))
    return nullptr;
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  if (!stbtt_GetCodepointBox(&font->info, 'H', &x0, &y0, &x1, &y1) || y1 <= 0) return nullptr;
  font->cap_units = y1;
  font->name = std::filesystem::path(path).filename().string();
  return font;
}

// The font in use, chosen on first use when use_font was never called.
// Called with the state's mutex held.
TrueTypeFont* current_font() {
  FontState& s = state();
  if (!s.chosen) {
    const char* env = std::getenv("ATTNLAB_FONT");
    s.font = load_font(env ? std::string(env) : std::string(kDefaultFont));
    s.chosen = true;
  }
  return s.font.get();
}

// UTF-8 to code points; a malformed byte becomes '?' (charts must draw
// whatever label they are given, never fail on it).
std::vector<uint32_t> code_points(const std::string& s) {
  std::vector<uint32_t> out;
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    uint32_t cp = extra == 0 ? c : extra == 1 ? c & 0x1F : extra == 2 ? c & 0x0F : c & 0x07;
    bool ok = extra >= 0 && i + extra < s.size();
    for (int k = 1; ok && k <= extra; ++k) {
      const unsigned char next = static_cast<unsigned char>(s[i + k]);
      ok = (next & 0xC0) == 0x80;
      cp = (cp << 6) | (next & 0x3F);
    }
    out.push_back(ok ? cp : '?');
    i += ok ? 1 + extra : 1;
  }
  return out;
}

// Coverage of a line of text, row-major: width x height, the top at the
// capitals' top (as the bitmap font's quads are placed), a little room
// below the descenders.
struct TextMask {
  int width = 0, height = 0;
  std::vector<unsigned char> alpha;
};

int mask_height(int scale) { return (draw::kTextHeight + 1) * scale; }

// The glyph for a code point, or '?' where the font has none.
int glyph_of(const stbtt_fontinfo& info, uint32_t cp) {
  const int g = stbtt_FindGlyphIndex(&info, static_cast<int>(cp));
  return g != 0 ? g : stbtt_FindGlyphIndex(&info, '?');
}

// Walks the glyphs of `s` with their pen positions in pixels (kerning
// included); `visit(glyph, pen)` for each; returns the final pen position.
template <class Visit>
double walk_glyphs(const TrueTypeFont& f, const std::string& s, float px_per_unit, Visit visit) {
  double pen = 0;
  int previous = 0;
  for (uint32_t cp : code_points(s)) {
    const int g = glyph_of(f.info, cp);
    if (previous) pen += stbtt_GetGlyphKernAdvance(&f.info, previous, g) * px_per_unit;
    visit(g, pen);
    int advance = 0, left_bearing = 0;
    stbtt_GetGlyphHMetrics(&f.info, g, &advance, &left_bearing);
    pen += advance * px_per_unit;
    previous = g;
  }
  return pen;
}

float px_per_unit(const TrueTypeFont& f, int scale) {
  return static_cast<float>(draw::kCapHeight * scale) / static_cast<float>(f.cap_units);
}

// Trailing spacing of one unit, as the bitmap font's widths include.
int truetype_width(const TrueTypeFont& f, const std::string& s, int scale) {
  return static_cast<int>(std::ceil(walk_glyphs(f, s, px_per_unit(f, scale), [](int, double) {}))) + scale;
}

TextMask truetype_mask(const TrueTypeFont& f, const std::string& s, int scale) {
  TextMask m{truetype_width(f, s, scale), mask_height(scale), {}};
  m.alpha.assign(static_cast<std::size_t>(m.width) * m.height, 0);
  const float k = px_per_unit(f, scale);
  const int baseline = draw::kCapHeight * scale;
  walk_glyphs(f, s, k, [&](int g, double pen) {
    // Glyphs start at fractional pen positions: render each at its
    // sub-pixel shift so spacing stays even.
    const int origin = static_cast<int>(std::floor(pen));
    const float shift = static_cast<float>(pen - origin);
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    stbtt_GetGlyphBitmapBoxSubpixel(&f.info, g, k, k, shift, 0, &x0, &y0, &x1, &y1);
    const int w = x1 - x0, h = y1 - y0;
    if (w <= 0 || h <= 0) return;  // a space
    std::vector<unsigned char> glyph(static_cast<std::size_t>(w) * h);
    stbtt_MakeGlyphBitmapSubpixel(&f.info, glyph.data(), w, h, w, k, k, shift, 0, g);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const int mx = origin + x0 + x, my = baseline + y0 + y;
        if (mx < 0 || my < 0 || mx >= m.width || my >= m.height) continue;
        unsigned char& a = m.alpha[static_cast<std::size_t>(my) * m.width + mx];
        a = std::max(a, glyph[static_cast<std::size_t>(y) * w + x]);  // touching glyphs: the stronger ink
      }
  });
  return m;
}

// stb_easy_font draws glyphs from quads on its unit grid; each unit becomes
// scale x scale fully covered pixels.
TextMask bitmap_mask(const std::string& s, int scale) {
  std::string t = draw::printable(s);
  TextMask m{stb_easy_font_width(t.data()) * scale, mask_height(scale), {}};
  m.alpha.assign(static_cast<std::size_t>(m.width) * m.height, 0);
  if (t.empty()) return m;
  // 4 vertices of 16 bytes per quad; the busiest glyph ('X') has 11 quads,
  // so 768 bytes a character always suffice.
  std::vector<char> quads(t.size() * 768 + 64);
  const int n = stb_easy_font_print(0, 0, t.data(), nullptr, quads.data(), static_cast<int>(quads.size()));
  for (int q = 0; q < n; ++q) {
    float v0[2], v2[2];  // vertex 0 is the quad's top-left corner, vertex 2 its bottom-right
    std::memcpy(v0, &quads[q * 64], sizeof v0);
    std::memcpy(v2, &quads[q * 64 + 32], sizeof v2);
    for (int y = static_cast<int>(v0[1]) * scale; y < static_cast<int>(v2[1]) * scale && y < m.height; ++y)
      for (int x = static_cast<int>(v0[0]) * scale; x < static_cast<int>(v2[0]) * scale && x < m.width; ++x)
        m.alpha[static_cast<std::size_t>(y) * m.width + x] = 255;
  }
  return m;
}

TextMask text_mask(const std::string& s, int scale) {
  std::lock_guard<std::mutex> lock(state().mutex);
  const TrueTypeFont* f = current_font();
  return f ? truetype_mask(*f, s, scale) : bitmap_mask(s, scale);
}

}  // namespace

bool use_font(const std::string& ttf_path) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().font = load_font(ttf_path);
  state().chosen = true;
  return state().font != nullptr;
}

std::string font_description() {
  std::lock_guard<std::mutex> lock(state().mutex);
  const TrueTypeFont* f = current_font();
  return f ? f->name + " (TrueType, stb_truetype)" : "built-in bitmap font (stb_easy_font)";
}

namespace draw {

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (ch >= 32 && ch < 127) out += static_cast<char>(ch);
    else if (ch < 0x80 || ch >= 0xC0) out += '?';  // skip UTF-8 continuation bytes
  }
  return out;
}

int text_width(const std::string& s, int scale) {
  std::lock_guard<std::mutex> lock(state().mutex);
  const TrueTypeFont* f = current_font();
  return f ? truetype_width(*f, s, scale) : stb_easy_font_width(printable(s).data()) * scale;
}

std::string fit_text(const std::string& s, int scale, int max_width) {
  if (text_width(s, scale) <= max_width) return s;
  // Drop whole characters (never half of a UTF-8 sequence) until it fits.
  std::string t = s;
  while (!t.empty() && text_width(t + "..", scale) > max_width) {
    // The last character: its continuation bytes (10xxxxxx), then its first byte.
    while (!t.empty() && (static_cast<unsigned char>(t.back()) & 0xC0) == 0x80) t.pop_back();
    if (!t.empty()) t.pop_back();
  }
  return t + "..";
}

void Canvas::text(int x, int y, const std::string& s, Rgb c, int scale, bool vertical) {
  const TextMask m = text_mask(s, scale);
  for (int v = 0; v < m.height; ++v)
    for (int u = 0; u < m.width; ++u) {
      const unsigned char a = m.alpha[static_cast<std::size_t>(v) * m.width + u];
      if (a == 0) continue;
      // Turned left: along-the-text u goes up the image, down-the-glyph v goes right.
      if (!vertical) set_pixel(x + u, y + v, c, a / 255.0);
      else set_pixel(x + v, y + m.width - 1 - u, c, a / 255.0);
    }
}

}  // namespace draw

}  // namespace attn::plot

#endif  // ATTNLAB_HAVE_STB
