// The Postgres layer's pure parts: no server needed.
#include "pg/connection.hpp"
#include "pg/query.hpp"

#include <gtest/gtest.h>

using namespace puff::pg;

TEST(PgLeadingKeyword, SkipsSpaceCommentsAndParens) {
  EXPECT_EQ(leading_keyword("begin"), "BEGIN");
  EXPECT_EQ(leading_keyword("  \n\tStart transaction"), "START");
  EXPECT_EQ(leading_keyword("-- hi\n  commit"), "COMMIT");
  EXPECT_EQ(leading_keyword("/* a /* nested */ comment */ END"), "END");
  EXPECT_EQ(leading_keyword("(select 1)"), "SELECT");
  EXPECT_EQ(leading_keyword(""), "");
  EXPECT_EQ(leading_keyword("/* unterminated"), "");
  EXPECT_EQ(leading_keyword("123"), "");
  EXPECT_EQ(leading_keyword("begin_work()"), "BEGIN_WORK");
}

TEST(PgParams, ParallelArraysAndNulls) {
  Params p;
  p.add("42");
  p.add_null(23);
  p.add(std::string_view("\x00\x01", 2), 17, Format::Binary);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p.types(), (std::vector<Oid>{0, 23, 17}));
  EXPECT_EQ(p.lengths(), (std::vector<int>{2, -1, 2}));
  EXPECT_EQ(p.formats(), (std::vector<int>{0, 0, 1}));
  const auto& v = p.values();
  EXPECT_STREQ(v[0], "42");  // text values are NUL-terminated for libpq
  EXPECT_EQ(v[1], nullptr);
  EXPECT_EQ(v[2][0], '\0');
  EXPECT_EQ(v[2][1], '\x01');
  p.clear();
  EXPECT_EQ(p.size(), 0u);
}

TEST(PgResult, FailureCarriesFields) {
  Result r = Result::failure(ErrorInfo::make(sqlstate::kConnectionFailure, "gone", true));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status(), Result::Status::Error);
  EXPECT_EQ(r.error().sqlstate, "08006");
  EXPECT_EQ(r.error().severity, "ERROR");
  EXPECT_TRUE(r.error().connection);
  EXPECT_EQ(r.row_count(), 0);
  EXPECT_EQ(r.rows_affected(), -1);
  EXPECT_EQ(r.command_tag(), "");
}

TEST(PgConnInfo, UrlAndKeyValueForms) {
  PoolSettings s;
  s.url = "postgres://u:secret@db.example:6543/app?sslmode=disable&options=-c%20search_path%3Dx";
  s.statement_timeout_ms = 1500;
  std::string err;
  auto ci = ConnInfo::make(s, &err);
  ASSERT_TRUE(ci) << err;
  EXPECT_EQ(ci->describe(), "db.example:6543/app");  // no password in messages
  std::string options, fallback, sslmode;
  for (int i = 0; ci->keywords()[i]; ++i) {
    std::string k = ci->keywords()[i];
    if (k == "options") options = ci->values()[i];
    if (k == "fallback_application_name") fallback = ci->values()[i];
    if (k == "sslmode") sslmode = ci->values()[i];
  }
  EXPECT_EQ(options, "-c search_path=x -c statement_timeout=1500");
  EXPECT_EQ(fallback, "puff");
  EXPECT_EQ(sslmode, "disable");

  s.url = "host=/tmp port=5 dbname=d";
  s.statement_timeout_ms = 0;
  ci = ConnInfo::make(s, &err);
  ASSERT_TRUE(ci) << err;
  EXPECT_EQ(ci->describe(), "/tmp:5/d");

  s.url = "postgres://h/db?nosuchoption=1";
  EXPECT_FALSE(ConnInfo::make(s, &err));
  EXPECT_NE(err.find("nosuchoption"), std::string::npos) << err;
}
