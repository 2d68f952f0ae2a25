// The native runtime's settings: the typed model that puff.toml / PUFF_* / flags end up in.
// Parsing TOML is Python's job (tomllib); this layer validates names, types and ranges so a
// wrong value is rejected with a message naming the key, whichever front end produced it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace puff::core {

struct RuntimeSettings {
  /** I/O threads (asio loops). 0 = one per CPU. */
  std::uint32_t io_threads = 0;
  /** Threads that run @puff.blocking / spawn_blocking work (a bound, not a pre-start count). */
  std::uint32_t blocking_threads = 32;
  /** How long the Python thread spins for completions before sleeping, in microseconds. */
  std::uint32_t spin_us = 50;
  /** After SIGINT/SIGTERM, how long to wait for a clean stop before forcing the exit. */
  std::uint32_t shutdown_timeout_ms = 10000;

  /** io_threads with 0 resolved to the CPU count. */
  std::uint32_t resolved_io_threads() const;
};

/** A key and its value as text or integer, as handed over by a front end. */
struct SettingValue {
  std::string key;
  std::optional<std::int64_t> integer;  // set when the front end had an integer
  std::string text;                     // otherwise the text form
};

/** Applies `values` over `base`. On error returns a message such as
 *  "blocking_threads: must be between 1 and 4096, got 0" and leaves `out` unspecified. */
std::optional<std::string> apply_settings(const std::vector<SettingValue>& values, RuntimeSettings& out);

/** The known setting names (for "did you mean" in front ends). */
const std::vector<std::string_view>& setting_names();

}  // namespace puff::core
