#include "core/settings.hpp"

#include <charconv>
#include <thread>

namespace puff::core {

namespace {

struct Spec {
  std::string_view name;
  std::int64_t min, max;
  std::uint32_t RuntimeSettings::*field;
};

constexpr Spec kSpecs[] = {
    {"io_threads", 0, 1024, &RuntimeSettings::io_threads},
    {"blocking_threads", 1, 4096, &RuntimeSettings::blocking_threads},
    {"spin_us", 0, 100000, &RuntimeSettings::spin_us},
    {"shutdown_timeout_ms", 0, 3600000, &RuntimeSettings::shutdown_timeout_ms},
};

std::optional<std::int64_t> parse_int(std::string_view s) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

std::uint32_t RuntimeSettings::resolved_io_threads() const {
  if (io_threads) return io_threads;
  unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

const std::vector<std::string_view>& setting_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v;
    for (const auto& s : kSpecs) v.push_back(s.name);
    return v;
  }();
  return names;
}

std::optional<std::string> apply_settings(const std::vector<SettingValue>& values, RuntimeSettings& out) {
  for (const auto& v : values) {
    const Spec* spec = nullptr;
    for (const auto& s : kSpecs)
      if (s.name == v.key) spec = &s;
    if (!spec) return v.key + ": unknown runtime setting";
    std::optional<std::int64_t> n = v.integer ? v.integer : parse_int(v.text);
    if (!n) return v.key + ": expected an integer, got '" + v.text + "'";
    if (*n < spec->min || *n > spec->max)
      return v.key + ": must be between " + std::to_string(spec->min) + " and " + std::to_string(spec->max) +
             ", got " + std::to_string(*n);
    out.*(spec->field) = static_cast<std::uint32_t>(*n);
  }
  return std::nullopt;
}

}  // namespace puff::core
