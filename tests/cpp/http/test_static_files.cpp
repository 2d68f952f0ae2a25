// The pure rules behind static files (http/static_rules.hpp): paths and traversal, Content-Type,
// validators and conditional requests, byte ranges; and the small-file cache. The handler itself
// is tested end to end in tests/py/test_static_cors.py.
#include "http/static_rules.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "http/static_files.hpp"

using namespace puff::http;

namespace {

struct Decoded {
  PathCheck check;
  std::string path;
  bool dir = false;
};

Decoded decode(std::string_view in) {
  Decoded d;
  d.check = decode_static_path(in, d.path, d.dir);
  return d;
}

const FileStamp kStamp{1234, 784111777, 5, 42};  // 1994-11-06 08:49:37 UTC

}  // namespace

// ---- paths ------------------------------------------------------------------------------------------

TEST(StaticPath, PlainAndPercentDecoded) {
  auto d = decode("css/site.css");
  EXPECT_EQ(d.check, PathCheck::Ok);
  EXPECT_EQ(d.path, "css/site.css");
  EXPECT_FALSE(d.dir);
  d = decode("a%20b/%C3%A9t%C3%A9.txt");
  EXPECT_EQ(d.check, PathCheck::Ok);
  EXPECT_EQ(d.path, "a b/\xC3\xA9t\xC3\xA9.txt");
  EXPECT_EQ(decode("%41%4a%4A").path, "AJJ");  // hex digits in either case
}

TEST(StaticPath, EmptyAndDotSegmentsCollapse) {
  auto d = decode("a//b/./c");
  EXPECT_EQ(d.check, PathCheck::Ok);
  EXPECT_EQ(d.path, "a/b/c");
  d = decode("");
  EXPECT_EQ(d.check, PathCheck::Ok);
  EXPECT_EQ(d.path, "");
  EXPECT_TRUE(d.dir);
  d = decode("docs/");
  EXPECT_EQ(d.path, "docs");
  EXPECT_TRUE(d.dir);
  EXPECT_TRUE(decode("docs/.").dir);
}

TEST(StaticPath, TraversalIsRejected) {
  for (const char* bad : {"..", "../secret", "a/../../secret", "a/..", "%2e%2e/secret", "%2E%2E/secret",
                          "a%2f..%2fsecret", "..%2fsecret", ".%2e/x", "a\\..\\secret", "a%5csecret"}) {
    EXPECT_EQ(decode(bad).check, PathCheck::NotFound) << bad;
  }
}

TEST(StaticPath, HiddenFilesAreNotServedButWellKnownIs) {
  EXPECT_EQ(decode(".env").check, PathCheck::NotFound);
  EXPECT_EQ(decode(".git/config").check, PathCheck::NotFound);
  EXPECT_EQ(decode("a/.htpasswd").check, PathCheck::NotFound);
  EXPECT_EQ(decode("%2eenv").check, PathCheck::NotFound);
  auto d = decode(".well-known/security.txt");
  EXPECT_EQ(d.check, PathCheck::Ok);
  EXPECT_EQ(d.path, ".well-known/security.txt");
  EXPECT_EQ(decode("file.tar.gz").check, PathCheck::Ok);  // dots elsewhere are fine
}

TEST(StaticPath, MalformedEscapesAndNulAreBadRequests) {
  for (const char* bad : {"%", "%2", "a%zz", "%g0", "a%00b", "%00"}) {
    EXPECT_EQ(decode(bad).check, PathCheck::BadRequest) << bad;
  }
}

TEST(StaticPath, Within) {
  EXPECT_TRUE(path_within("/srv/www", "/srv/www"));
  EXPECT_TRUE(path_within("/srv/www", "/srv/www/a/b"));
  EXPECT_FALSE(path_within("/srv/www", "/srv/wwwx/a"));  // a sibling sharing the prefix
  EXPECT_FALSE(path_within("/srv/www", "/srv"));
  EXPECT_FALSE(path_within("/srv/www", "/etc/passwd"));
  EXPECT_TRUE(path_within("/", "/etc/passwd"));
}

TEST(StaticPath, ContentTypes) {
  EXPECT_EQ(content_type_for("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(content_type_for("a/b/APP.JS"), "text/javascript; charset=utf-8");
  EXPECT_EQ(content_type_for("m.mjs"), "text/javascript; charset=utf-8");
  EXPECT_EQ(content_type_for("x.css"), "text/css; charset=utf-8");
  EXPECT_EQ(content_type_for("d.json"), "application/json");
  EXPECT_EQ(content_type_for("i.svg"), "image/svg+xml; charset=utf-8");
  EXPECT_EQ(content_type_for("p.png"), "image/png");
  EXPECT_EQ(content_type_for("p.jpeg"), "image/jpeg");
  EXPECT_EQ(content_type_for("m.wasm"), "application/wasm");
  EXPECT_EQ(content_type_for("f.woff2"), "font/woff2");
  EXPECT_EQ(content_type_for("readme"), "application/octet-stream");
  EXPECT_EQ(content_type_for("dir.d/readme"), "application/octet-stream");  // the dot is in the folder
  EXPECT_EQ(content_type_for("x.unknownext"), "application/octet-stream");
}

// ---- validators -----------------------------------------------------------------------------------

TEST(StaticValidators, EtagIsStrongAndChangesWithTheFile) {
  std::string e = make_etag(kStamp);
  EXPECT_EQ(e.front(), '"');
  EXPECT_EQ(e.back(), '"');
  FileStamp touched = kStamp;
  touched.mtime_nsec += 1;
  EXPECT_NE(make_etag(touched), e);
  FileStamp grown = kStamp;
  grown.size += 1;
  EXPECT_NE(make_etag(grown), e);
  FileStamp replaced = kStamp;
  replaced.inode += 1;
  EXPECT_NE(make_etag(replaced), e);
}

TEST(StaticValidators, HttpDateFormatsAndParsesAllThreeForms) {
  EXPECT_EQ(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(http_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), 784111777);
  EXPECT_EQ(parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"), 951782400);
  for (std::int64_t t : {0LL, 1700000000LL, 4102444800LL}) EXPECT_EQ(parse_http_date(http_date(t)), t);
  for (const char* bad : {"", "yesterday", "Sun, 06 Nov 1994 08:49:37", "Sun, 6 Nov 1994 08:49:37 GMT",
                          "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:00:00 GMT",
                          "Sun, 06 Nov 1994 08:49:37 GMT junk"}) {
    EXPECT_FALSE(parse_http_date(bad)) << bad;
  }
}

TEST(StaticValidators, EtagLists) {
  EXPECT_TRUE(etag_list_matches("\"a\"", "\"a\"", false));
  EXPECT_TRUE(etag_list_matches("\"x\", \"a\"", "\"a\"", false));
  EXPECT_TRUE(etag_list_matches(" * ", "\"a\"", false));
  EXPECT_TRUE(etag_list_matches("W/\"a\"", "\"a\"", true));   // weak comparison ignores W/
  EXPECT_FALSE(etag_list_matches("W/\"a\"", "\"a\"", false)); // strong comparison does not
  EXPECT_FALSE(etag_list_matches("\"b\"", "\"a\"", true));
  EXPECT_FALSE(etag_list_matches("a", "\"a\"", true));  // unquoted: malformed
  EXPECT_FALSE(etag_list_matches("\"a", "\"a\"", true));
}

TEST(StaticConditional, IfNoneMatchGives304AndWinsOverIfModifiedSince) {
  std::string e = make_etag(kStamp);
  Conditions c;
  c.if_none_match = e;
  EXPECT_EQ(evaluate_preconditions(c, e, kStamp.mtime_sec), Precondition::NotModified);
  c.if_none_match = "\"other\"";
  c.if_modified_since = "Sun, 06 Nov 1994 08:49:37 GMT";  // would say "not modified"
  EXPECT_EQ(evaluate_preconditions(c, e, kStamp.mtime_sec), Precondition::Proceed);
}

TEST(StaticConditional, IfModifiedSince) {
  std::string e = make_etag(kStamp);
  Conditions c;
  c.if_modified_since = "Sun, 06 Nov 1994 08:49:37 GMT";
  EXPECT_EQ(evaluate_preconditions(c, e, kStamp.mtime_sec), Precondition::NotModified);
  c.if_modified_since = "Sun, 06 Nov 1994 08:49:36 GMT";
  EXPECT_EQ(evaluate_preconditions(c, e, kStamp.mtime_sec), Precondition::Proceed);
  c.if_modified_since = "not a date";  // ignored
  EXPECT_EQ(evaluate_preconditions(c, e, kStamp.mtime_sec), Precondition::Proceed);
}

TEST(StaticConditional, IfMatchAndIfUnmodifiedSinceFail412) {
  std::string e = make_etag(kStamp);
  Conditions c;
  c.if_match = "\"other\"";
  EXPECT_EQ(evaluate_preconditions(c, e, kStamp.mtime_sec), Precondition::Failed);
  c.if_match = e;
  EXPECT_EQ(evaluate_preconditions(c, e, kStamp.mtime_sec), Precondition::Proceed);
  c = {};
  c.if_unmodified_since = "Sun, 06 Nov 1994 08:49:36 GMT";
  EXPECT_EQ(evaluate_preconditions(c, e, kStamp.mtime_sec), Precondition::Failed);
  c.if_unmodified_since = "Sun, 06 Nov 1994 08:49:37 GMT";
  EXPECT_EQ(evaluate_preconditions(c, e, kStamp.mtime_sec), Precondition::Proceed);
}

// ---- ranges -----------------------------------------------------------------------------------------

TEST(StaticRange, SingleRanges) {
  ByteRange r;
  ASSERT_EQ(parse_range("bytes=0-99", 1000, r), RangeResult::Partial);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 99u);
  EXPECT_EQ(r.length(), 100u);
  ASSERT_EQ(parse_range("bytes=900-", 1000, r), RangeResult::Partial);
  EXPECT_EQ(r.first, 900u);
  EXPECT_EQ(r.last, 999u);
  ASSERT_EQ(parse_range("bytes=-100", 1000, r), RangeResult::Partial);
  EXPECT_EQ(r.first, 900u);
  EXPECT_EQ(r.last, 999u);
  ASSERT_EQ(parse_range("bytes=-5000", 1000, r), RangeResult::Partial);  // more than there is: all
  EXPECT_EQ(r.first, 0u);
  ASSERT_EQ(parse_range("bytes=990-5000", 1000, r), RangeResult::Partial);  // clamped
  EXPECT_EQ(r.last, 999u);
  ASSERT_EQ(parse_range("Bytes=5-5", 1000, r), RangeResult::Partial);  // the unit is case-insensitive
  EXPECT_EQ(r.length(), 1u);
  ASSERT_EQ(parse_range("bytes=0-99999999999999999999999", 10, r), RangeResult::Partial);  // saturates
  EXPECT_EQ(r.last, 9u);
}

TEST(StaticRange, Unsatisfiable) {
  ByteRange r;
  EXPECT_EQ(parse_range("bytes=1000-", 1000, r), RangeResult::Unsatisfiable);
  EXPECT_EQ(parse_range("bytes=5000-6000", 1000, r), RangeResult::Unsatisfiable);
  EXPECT_EQ(parse_range("bytes=-0", 1000, r), RangeResult::Unsatisfiable);
  EXPECT_EQ(parse_range("bytes=0-", 0, r), RangeResult::Unsatisfiable);
  EXPECT_EQ(parse_range("bytes=-1", 0, r), RangeResult::Unsatisfiable);
}

TEST(StaticRange, IgnoredMeansFull) {
  ByteRange r;
  for (const char* v : {"", "bytes", "bytes=", "bytes=-", "items=0-1", "bytes=a-b", "bytes=5-1", "bytes=0-1,5-6",
                        "bytes=0-1, -5", "bytes=1-2-3", "bytes=+1-2"}) {
    EXPECT_EQ(parse_range(v, 1000, r), RangeResult::Full) << v;
  }
}

TEST(StaticRange, IfRange) {
  std::string e = make_etag(kStamp);
  EXPECT_TRUE(if_range_matches(e, e, kStamp.mtime_sec));
  EXPECT_FALSE(if_range_matches("\"other\"", e, kStamp.mtime_sec));
  EXPECT_FALSE(if_range_matches("W/" + e, e, kStamp.mtime_sec));
  EXPECT_TRUE(if_range_matches("Sun, 06 Nov 1994 08:49:37 GMT", e, kStamp.mtime_sec));
  EXPECT_FALSE(if_range_matches("Sun, 06 Nov 1994 08:49:38 GMT", e, kStamp.mtime_sec));
  EXPECT_FALSE(if_range_matches("garbage", e, kStamp.mtime_sec));
}

// ---- the small-file cache ------------------------------------------------------------------------------

namespace {

std::shared_ptr<StaticFiles::Cached> cached(std::size_t bytes, char fill) {
  auto c = std::make_shared<StaticFiles::Cached>();
  c->body.assign(bytes, fill);
  c->checked = std::chrono::steady_clock::now();
  return c;
}

std::string key(std::size_t i) {  // not "f" + to_string(i): GCC 12 warns falsely (-Wrestrict)
  std::string k = "f";
  k += std::to_string(i);
  return k;
}

}  // namespace

TEST(StaticCache, AnEntryIsFoundOnlyWhileFresh) {
  StaticFiles::FileCache cache;
  auto now = std::chrono::steady_clock::now();
  EXPECT_EQ(cache.find("a.txt", now), nullptr);
  auto a = cached(10, 'a');
  cache.put("a.txt", a);
  EXPECT_EQ(cache.find("a.txt", a->checked), a);
  EXPECT_EQ(cache.find("a.txt", a->checked + StaticFiles::kCacheValid - std::chrono::milliseconds(1)), a);
  EXPECT_EQ(cache.find("a.txt", a->checked + StaticFiles::kCacheValid), nullptr);  // checked again
  EXPECT_EQ(cache.find("sub/", a->checked), nullptr);
  auto newer = cached(12, 'b');
  cache.put("a.txt", newer);  // a refresh replaces the entry
  EXPECT_EQ(cache.find("a.txt", newer->checked), newer);
  auto older = cached(14, 'c');
  older->checked = newer->checked - std::chrono::milliseconds(5);
  cache.put("a.txt", older);  // a slower reader's copy, checked before: the newer one stays
  EXPECT_EQ(cache.find("a.txt", newer->checked), newer);
}

TEST(StaticCache, StaysWithinItsBudget) {
  StaticFiles::FileCache cache;
  constexpr std::size_t kEntry = StaticFiles::kCacheFileMax;
  constexpr std::size_t kFit = StaticFiles::kCacheBytes / kEntry;
  for (std::size_t i = 0; i < kFit + 10; ++i) cache.put(key(i), cached(kEntry, 'x'));
  auto now = std::chrono::steady_clock::now();
  std::size_t found = 0;
  for (std::size_t i = 0; i < kFit + 10; ++i) found += cache.find(key(i), now) != nullptr;
  // Older entries made room (down to three quarters of the budget, keys and validators counted
  // too); the newest one is always kept.
  EXPECT_LE(found * kEntry, StaticFiles::kCacheBytes);
  EXPECT_GE(found, kFit / 2);
  EXPECT_NE(cache.find(key(kFit + 9), now), nullptr);
}
