#include "http/utf8.hpp"

#include <gtest/gtest.h>

#include <string>

using puff::http::Utf8Validator;
using puff::http::valid_utf8;

namespace {

std::string encode(std::uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | cp >> 6);
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | cp >> 12);
    s += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | cp >> 18);
    s += static_cast<char>(0x80 | (cp >> 12 & 0x3F));
    s += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

}  // namespace

TEST(Utf8, AcceptsEveryScalarValueBoundary) {
  for (std::uint32_t cp : {0x0u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xD7FFu, 0xE000u, 0xFFFDu, 0xFFFFu, 0x10000u,
                           0x10FFFFu}) {
    EXPECT_TRUE(valid_utf8(encode(cp))) << std::hex << cp;
  }
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"));
  EXPECT_TRUE(valid_utf8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"));
}

TEST(Utf8, RejectsWhatRfc3629Forbids) {
  for (std::string bad : {
           std::string("\x80"),                  // lone continuation
           std::string("\xbf"),                  //
           std::string("\xc0\x80"),              // overlong NUL
           std::string("\xc1\xbf"),              // overlong
           std::string("\xe0\x80\x80"),          // overlong
           std::string("\xe0\x9f\xbf"),          // overlong U+07FF
           std::string("\xf0\x8f\xbf\xbf"),      // overlong U+FFFF
           std::string("\xed\xa0\x80"),          // surrogate U+D800
           std::string("\xed\xbf\xbf"),          // surrogate U+DFFF
           std::string("\xf4\x90\x80\x80"),      // U+110000
           std::string("\xf5\x80\x80\x80"),      //
           std::string("\xff"),                  //
           std::string("\xfe"),                  //
           std::string("\xc3"),                  // truncated
           std::string("\xe2\x82"),              //
           std::string("\xf0\x9f\x98"),          //
           std::string("\xc3\x28"),              // bad continuation
           std::string("\xe2\x28\xa1"),          //
           std::string("abcdefgh\xffijklmnop"),  // inside an ASCII run
       }) {
    EXPECT_FALSE(valid_utf8(bad)) << testing::PrintToString(bad);
  }
}

TEST(Utf8, StreamingOverEverySplit) {
  const std::string text = "ascii \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 more ascii to pass eight bytes";
  for (std::size_t a = 0; a <= text.size(); ++a) {
    for (std::size_t b = a; b <= text.size(); b += 3) {
      Utf8Validator v;
      EXPECT_TRUE(v.feed(std::string_view(text).substr(0, a)));
      EXPECT_TRUE(v.feed(std::string_view(text).substr(a, b - a)));
      EXPECT_TRUE(v.feed(std::string_view(text).substr(b)));
      EXPECT_TRUE(v.complete()) << a << " " << b;
    }
  }
}

TEST(Utf8, IncompleteAtTheEndIsNotComplete) {
  Utf8Validator v;
  EXPECT_TRUE(v.feed("ab\xf0\x9f"));
  EXPECT_FALSE(v.complete());
  EXPECT_FALSE(v.failed());
  EXPECT_TRUE(v.feed("\x98\x80"));
  EXPECT_TRUE(v.complete());
}

TEST(Utf8, FailureIsSticky) {
  Utf8Validator v;
  EXPECT_FALSE(v.feed("\xff"));
  EXPECT_FALSE(v.feed("a"));
  EXPECT_FALSE(v.complete());
  EXPECT_TRUE(v.failed());
  v.reset();
  EXPECT_TRUE(v.feed("a"));
  EXPECT_TRUE(v.complete());
}

TEST(Utf8, SplitSurrogateAndOverlongAreCaught) {
  Utf8Validator v;
  EXPECT_TRUE(v.feed("\xed"));
  EXPECT_FALSE(v.feed("\xa0\x80"));
  Utf8Validator w;
  EXPECT_TRUE(w.feed("\xf0"));
  EXPECT_FALSE(w.feed("\x80"));
}
