// CORS decisions (http/cors_policy.hpp): the three bases, overrides, preflights, credentials and
// origin mirroring. The decorator is tested end to end in tests/py/test_static_cors.py.
#include "http/cors_policy.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace puff::http;

namespace {

CorsList list(std::initializer_list<const char*> items) {
  CorsList l;
  for (const char* i : items) l.items.emplace_back(i);
  return l;
}

CorsList any() {
  CorsList l;
  l.any = true;
  return l;
}

CorsOptions base(CorsOptions::Base b) {
  CorsOptions o;
  o.base = b;
  return o;
}

bool has(const std::string& headers, const std::string& line) {
  return headers.find(line + "\r\n") != std::string::npos;
}

const char* kSite = "https://app.example.com";

}  // namespace

TEST(CorsBase, DefaultAllowsNothing) {
  CorsPolicy p(CorsOptions{});
  EXPECT_FALSE(p.origin_allowed(kSite));
  EXPECT_EQ(p.actual_headers(std::string_view(kSite)), "");
  EXPECT_EQ(p.actual_headers(std::nullopt), "");
  auto pf = p.preflight(kSite, "GET", "");
  EXPECT_EQ(pf.status, 403);
  EXPECT_EQ(pf.headers, "");
  EXPECT_NE(pf.reason.find("origin"), std::string::npos);
}

TEST(CorsBase, PermissiveIsAStarWithoutCredentials) {
  CorsPolicy p(base(CorsOptions::Base::Permissive));
  EXPECT_TRUE(p.origin_allowed(kSite));
  EXPECT_TRUE(p.origin_allowed("null"));
  std::string h = p.actual_headers(std::string_view(kSite));
  EXPECT_TRUE(has(h, "Access-Control-Allow-Origin: *"));
  EXPECT_TRUE(has(h, "Access-Control-Expose-Headers: *"));
  EXPECT_EQ(h.find("Credentials"), std::string::npos);
  EXPECT_EQ(h.find("Vary"), std::string::npos);  // the answer does not depend on Origin
  auto pf = p.preflight(kSite, "DELETE", "x-token, content-type");
  EXPECT_EQ(pf.status, 204);
  EXPECT_TRUE(has(pf.headers, "Access-Control-Allow-Origin: *"));
  EXPECT_TRUE(has(pf.headers, "Access-Control-Allow-Methods: DELETE"));
  EXPECT_TRUE(has(pf.headers, "Access-Control-Allow-Headers: x-token, content-type"));
  EXPECT_TRUE(has(pf.headers, "Vary: Access-Control-Request-Method, Access-Control-Request-Headers"));
}

TEST(CorsBase, VeryPermissiveMirrorsWithCredentials) {
  CorsPolicy p(base(CorsOptions::Base::VeryPermissive));
  std::string h = p.actual_headers(std::string_view(kSite));
  EXPECT_TRUE(has(h, std::string("Access-Control-Allow-Origin: ") + kSite));
  EXPECT_TRUE(has(h, "Access-Control-Allow-Credentials: true"));
  EXPECT_TRUE(has(h, "Vary: Origin"));
  EXPECT_EQ(h.find("Expose"), std::string::npos);
  // No Origin: nothing to mirror, but caches must still keep per-origin copies apart.
  EXPECT_EQ(p.actual_headers(std::nullopt), "Vary: Origin\r\n");
  auto pf = p.preflight(kSite, "PATCH", "Authorization");
  EXPECT_EQ(pf.status, 204);
  EXPECT_TRUE(has(pf.headers, std::string("Access-Control-Allow-Origin: ") + kSite));
  EXPECT_TRUE(has(pf.headers, "Access-Control-Allow-Credentials: true"));
  EXPECT_TRUE(has(pf.headers, "Access-Control-Allow-Methods: PATCH"));
  EXPECT_TRUE(has(pf.headers, "Access-Control-Allow-Headers: Authorization"));
  EXPECT_TRUE(has(pf.headers, "Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers"));
}

TEST(CorsOrigins, NullAndJunkAreNeverMirrored) {
  CorsPolicy p(base(CorsOptions::Base::VeryPermissive));
  EXPECT_FALSE(p.origin_allowed("null"));
  EXPECT_FALSE(p.origin_allowed("https://a.example, https://b.example"));
  EXPECT_FALSE(p.origin_allowed(""));
  EXPECT_EQ(p.preflight("null", "GET", "").status, 403);
}

TEST(CorsOrigins, ListMatchesExactlyAndVaries) {
  CorsOptions o;
  o.allowed_origins = list({"http://localhost:7777", kSite});
  CorsPolicy p(o);
  EXPECT_TRUE(p.origin_allowed("http://localhost:7777"));
  EXPECT_TRUE(p.origin_allowed("HTTPS://APP.EXAMPLE.COM"));  // scheme and host are case-insensitive
  EXPECT_FALSE(p.origin_allowed("http://localhost:7778"));
  EXPECT_FALSE(p.origin_allowed("https://app.example.com.evil.net"));
  std::string h = p.actual_headers(std::string_view("http://localhost:7777"));
  EXPECT_TRUE(has(h, "Access-Control-Allow-Origin: http://localhost:7777"));
  EXPECT_TRUE(has(h, "Vary: Origin"));
  EXPECT_EQ(p.actual_headers(std::string_view("http://evil.net")), "Vary: Origin\r\n");
}

TEST(CorsCredentials, StarWithCredentialsMirrorsTheOrigin) {
  CorsOptions o = base(CorsOptions::Base::Permissive);
  o.allow_credentials = true;
  CorsPolicy p(o);
  std::string h = p.actual_headers(std::string_view(kSite));
  EXPECT_TRUE(has(h, std::string("Access-Control-Allow-Origin: ") + kSite));
  EXPECT_EQ(h.find("Access-Control-Allow-Origin: *"), std::string::npos);
  EXPECT_TRUE(has(h, "Access-Control-Allow-Credentials: true"));
  EXPECT_EQ(h.find("Expose-Headers: *"), std::string::npos);  // "*" would name a header here
  EXPECT_TRUE(has(h, "Vary: Origin"));
}

TEST(CorsPreflight, MethodsFollowFetchRules) {
  CorsOptions o;
  o.allowed_origins = list({kSite});
  o.allowed_methods = list({"get", "put", "PATCH"});
  CorsPolicy p(o);
  auto ok = p.preflight(kSite, "PUT", "");
  EXPECT_EQ(ok.status, 204);
  EXPECT_TRUE(has(ok.headers, "Access-Control-Allow-Methods: GET, PUT, PATCH"));  // Fetch-normalized names
  EXPECT_EQ(p.preflight(kSite, "POST", "").status, 204);  // safelisted methods always pass
  auto bad = p.preflight(kSite, "DELETE", "");
  EXPECT_EQ(bad.status, 403);
  EXPECT_NE(bad.reason.find("DELETE"), std::string::npos);
  EXPECT_EQ(p.preflight(kSite, "patch", "").status, 403);  // not normalized by Fetch: case-sensitive
}

TEST(CorsPreflight, HeadersAreCheckedOneByOne) {
  CorsOptions o;
  o.allowed_origins = list({kSite});
  o.allowed_headers = list({"Content-Type", "X-Token"});
  o.max_age_secs = 600;
  CorsPolicy p(o);
  auto ok = p.preflight(kSite, "GET", "content-type,x-token");
  EXPECT_EQ(ok.status, 204);
  EXPECT_TRUE(has(ok.headers, "Access-Control-Allow-Headers: Content-Type, X-Token"));
  EXPECT_TRUE(has(ok.headers, "Access-Control-Max-Age: 600"));
  EXPECT_TRUE(has(ok.headers, "Vary: Origin"));
  auto bad = p.preflight(kSite, "GET", "content-type, authorization");
  EXPECT_EQ(bad.status, 403);
  EXPECT_NE(bad.reason.find("authorization"), std::string::npos);
}

TEST(CorsExpose, ListIsSentEvenWithCredentials) {
  CorsOptions o = base(CorsOptions::Base::VeryPermissive);
  o.expose_headers = list({"X-Request-Id", "ETag"});
  CorsPolicy p(o);
  EXPECT_TRUE(has(p.actual_headers(std::string_view(kSite)), "Access-Control-Expose-Headers: X-Request-Id, ETag"));
}

TEST(CorsOverrides, ExplicitKeysBeatTheBase) {
  CorsOptions o = base(CorsOptions::Base::VeryPermissive);
  o.allowed_origins = list({kSite});
  o.allow_credentials = false;
  CorsPolicy p(o);
  EXPECT_FALSE(p.origin_allowed("https://other.example"));
  std::string h = p.actual_headers(std::string_view(kSite));
  EXPECT_EQ(h.find("Credentials"), std::string::npos);
  EXPECT_TRUE(has(h, std::string("Access-Control-Allow-Origin: ") + kSite));
}

TEST(CorsConfig, OriginValidation) {
  EXPECT_EQ(normalize_cors_origin("http://localhost:7777/"), "http://localhost:7777");
  EXPECT_EQ(normalize_cors_origin("https://app.example.com"), "https://app.example.com");
  EXPECT_EQ(normalize_cors_origin("http://[::1]:8000"), "http://[::1]:8000");
  for (const char* bad : {"localhost:7777", "ftp://x", "http://", "http://a/b", "http://a:", "http://a:123456",
                          "http://a b", "http://[::1", "*", "null"}) {
    EXPECT_FALSE(normalize_cors_origin(bad)) << bad;
  }
}

TEST(CorsOverrides, DefaultBaseWithStars) {
  CorsOptions o;  // Default, then every list opened up: the same as Permissive but nothing exposed
  o.allowed_origins = any();
  o.allowed_methods = any();
  o.allowed_headers = any();
  CorsPolicy p(o);
  std::string h = p.actual_headers(std::string_view(kSite));
  EXPECT_EQ(h, "Access-Control-Allow-Origin: *\r\n");
  EXPECT_EQ(p.preflight(kSite, "PUT", "x-a").status, 204);
}
