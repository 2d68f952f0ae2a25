// Static files: a Handler decorator that serves requests under configured URL prefixes from
// directories (natively: file-system work on the blocking-I/O pool, never on an I/O loop) and
// passes every other request to the next handler. The pure rules (paths, validators, ranges)
// are http/static_rules.hpp; the behaviour and its decisions are in docs/static-and-cors.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/server.hpp"
#include "http/static_rules.hpp"

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
   *  kChunk pieces under the exchange's backpressure; a small file checked less than
   *  kCacheValid ago is answered from memory. Any other request goes to `next`. */
  void on_request(std::shared_ptr<Exchange> ex) override;

  static constexpr std::size_t kChunk = 256 * 1024;

  /** Files up to kCacheFileMax bytes are kept in memory (kCacheBytes per mount at most, counting
   *  keys and validators) after the pool read them, unless changed in the last two seconds: for
   *  kCacheValid after that check, a request for one is answered on the I/O thread, without the
   *  trip through the pool. Later, the pool checks the file again. */
  static constexpr std::uint64_t kCacheFileMax = 256 * 1024;
  static constexpr std::size_t kCacheBytes = 32 * 1024 * 1024;
  static constexpr std::chrono::milliseconds kCacheValid{1000};
  /** A cached body to gzip larger than this is compressed on the blocking pool, not the loop;
   *  one not gzipped goes to the socket from the cache's copy, uncopied. */
  static constexpr std::uint64_t kInlineCompressMax = 16 * 1024;

  /** A file as served: its validators and type, and for a small file its bytes. */
  struct Cached {
    FileStamp stamp;
    std::string etag, last_modified, content_type;
    std::string body;  // the whole file (small files only)
    std::chrono::steady_clock::time_point checked;
  };

  /** One mount's small files by request path. Any thread. */
  class FileCache {
   public:
    /** The entry for `key` if it was checked less than kCacheValid before `now`. */
    std::shared_ptr<const Cached> find(const std::string& key, std::chrono::steady_clock::time_point now);
    void put(const std::string& key, std::shared_ptr<const Cached> f);

   private:
    std::mutex m_;
    std::unordered_map<std::string, std::shared_ptr<const Cached>> map_;
    std::size_t bytes_ = 0;
  };

  struct Mount {
    StaticMount cfg;
    std::string root;                  // realpath of cfg.directory
    std::shared_ptr<FileCache> cache;  // never null
  };

 private:
  std::shared_ptr<const std::vector<Mount>> mounts_;  // shared with requests still being served
  std::shared_ptr<Handler> next_;
};

}  // namespace puff::http
