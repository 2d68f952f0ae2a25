#include "core/settings.hpp"

#include <gtest/gtest.h>

using puff::core::apply_settings;
using puff::core::RuntimeSettings;
using puff::core::SettingValue;

TEST(Settings, DefaultsAreSane) {
  RuntimeSettings s;
  EXPECT_EQ(s.io_threads, 0u);
  EXPECT_GE(s.resolved_io_threads(), 1u);
  EXPECT_EQ(s.blocking_threads, 32u);
  EXPECT_EQ(s.shutdown_timeout_ms, 10000u);
}

TEST(Settings, AppliesIntegersAndText) {
  RuntimeSettings s;
  auto err = apply_settings({{"io_threads", 3, ""}, {"blocking_threads", std::nullopt, "8"}}, s);
  EXPECT_FALSE(err) << *err;
  EXPECT_EQ(s.io_threads, 3u);
  EXPECT_EQ(s.resolved_io_threads(), 3u);
  EXPECT_EQ(s.blocking_threads, 8u);
}

TEST(Settings, RejectsUnknownKeyByName) {
  RuntimeSettings s;
  auto err = apply_settings({{"io_thread", 3, ""}}, s);
  ASSERT_TRUE(err);
  EXPECT_EQ(*err, "io_thread: unknown runtime setting");
}

TEST(Settings, RejectsOutOfRange) {
  RuntimeSettings s;
  auto err = apply_settings({{"blocking_threads", 0, ""}}, s);
  ASSERT_TRUE(err);
  EXPECT_EQ(*err, "blocking_threads: must be between 1 and 4096, got 0");
  err = apply_settings({{"io_threads", -1, ""}}, s);
  ASSERT_TRUE(err);
  EXPECT_NE(err->find("io_threads"), std::string::npos);
}

TEST(Settings, RejectsNonIntegerText) {
  RuntimeSettings s;
  for (const char* bad : {"", "12x", "x", "1.5", " 3"}) {
    auto err = apply_settings({{"spin_us", std::nullopt, bad}}, s);
    ASSERT_TRUE(err) << bad;
    EXPECT_EQ(*err, std::string("spin_us: expected an integer, got '") + bad + "'");
  }
}

TEST(Settings, NamesListsEverySetting) {
  const auto& names = puff::core::setting_names();
  EXPECT_EQ(names.size(), 4u);
  EXPECT_NE(std::find(names.begin(), names.end(), "shutdown_timeout_ms"), names.end());
}
