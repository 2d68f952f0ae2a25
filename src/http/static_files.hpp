// Static files: a Handler decorator that serves requests under configured URL prefixes from
// directories (natively: file-system work on the blocking-I/O pool, never on an I/O loop) and
// passes every other request to the next handler. The pure rules (paths, validators, ranges)
// are http/static_rules.hpp; the behaviour and its decisions are in docs/static-and-cors.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/server.hpp"

namespace puff::http {

/** One URL prefix served from one directory. */
struct StaticMount {
  std::string prefix;                    // "/static/": starts with '/'; a missing trailing '/' is added
  std::string directory;                 // must exist; symlinks below it may not lead out of it
  std::string index = "index.html";      // served for a directory request ("" = none: 404)
  std::optional<std::uint64_t> max_age;  // "Cache-Control: max-age=N"; nullopt: no Cache-Control
};

class StaticFiles final : public Handler {
 public:
  /** Resolves each mount's directory to its real path. Throws std::runtime_error naming a
   *  directory that does not exist or is not a directory, or a prefix not starting with '/'.
   *  The longest matching prefix wins. Any thread; the object is immutable afterwards. */
  StaticFiles(std::vector<StaticMount> mounts, std::shared_ptr<Handler> next);

  /** I/O thread; never blocks. A path under a prefix is answered by this handler (GET and
   *  HEAD; 405 otherwise): the file-system calls (realpath, stat, open, pread) run on the
   *  blocking-I/O pool (core/task_pool.hpp), never on the I/O loop, and the body is streamed in
   *  kChunk pieces under the exchange's backpressure. Any other request goes to `next`. */
  void on_request(std::shared_ptr<Exchange> ex) override;

  static constexpr std::size_t kChunk = 256 * 1024;

  struct Mount {
    StaticMount cfg;
    std::string root;  // realpath of cfg.directory
  };

 private:
  std::shared_ptr<const std::vector<Mount>> mounts_;  // shared with requests still being served
  std::shared_ptr<Handler> next_;
};

}  // namespace puff::http
