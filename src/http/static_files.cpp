#include "http/static_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "core/task_pool.hpp"
#include "http/http1_parser.hpp"
#include "http/response.hpp"
#include "http/static_rules.hpp"

namespace puff::http {

namespace {

std::optional<std::string> real_path(const std::string& p) {
  char buf[PATH_MAX];
  if (!::realpath(p.c_str(), buf)) return std::nullopt;
  return std::string(buf);
}

std::optional<std::string_view> header(const Exchange& ex, std::string_view name) {
  for (const auto& h : ex.headers) {
    if (iequals(h.name, name)) return h.value;
  }
  return std::nullopt;
}

// A list-valued field sent on several lines, joined with ", " into `storage` (RFC 9110 §5.3).
std::optional<std::string_view> list_header(const Exchange& ex, std::string_view name, std::string& storage) {
  std::optional<std::string_view> first;
  for (const auto& h : ex.headers) {
    if (!iequals(h.name, name)) continue;
    if (!first) {
      first = h.value;
      continue;
    }
    if (storage.empty()) storage.assign(*first);
    storage.append(", ").append(h.value);
  }
  if (!storage.empty()) return std::string_view(storage);
  return first;
}

std::size_t count_header(const Exchange& ex, std::string_view name) {
  return static_cast<std::size_t>(
      std::count_if(ex.headers.begin(), ex.headers.end(), [name](const HeaderField& h) { return iequals(h.name, name); }));
}

using Fields = std::initializer_list<std::pair<std::string_view, std::string_view>>;

/** A complete response with a small body (errors, redirects, 304, 412, 416). */
void reply(Exchange& ex, int status, Fields fields, std::string_view body = {}) {
  ResponseWriter w(ex);
  w.set_status(status);
  for (const auto& [name, value] : fields) {
    if (!value.empty()) w.add_header(name, value);
  }
  if (!body.empty()) w.add_header("Content-Type", "text/plain; charset=utf-8");
  std::string out = w.head(static_cast<long long>(body.size()));
  w.frame(out, body.data(), body.size());  // nothing for HEAD, 304
  ex.write(std::move(out), true);
}

/** An error answer: the status and its reason phrase as the body. */
void reply_error(Exchange& ex, int status, Fields fields = {}) {
  std::string body(reason_phrase(status));
  body.push_back('\n');
  reply(ex, status, fields, body);
}

/** Streams [offset, offset+length) of an open file into the exchange, kChunk bytes at a time,
 *  framed by the response's ResponseWriter (so its framing and any content coding apply). Runs on
 *  the blocking-I/O pool: while more than out_high_water bytes are queued it stops, and the drain
 *  callback (I/O thread) posts the next round back to the pool. One round runs at a time, so the
 *  state needs no lock. Owns the descriptor. */
class FileSender : public std::enable_shared_from_this<FileSender> {
 public:
  FileSender(std::shared_ptr<Exchange> ex, ResponseWriter w, int fd, std::uint64_t offset, std::uint64_t length)
      : ex_(std::move(ex)), w_(std::move(w)), fd_(fd), offset_(offset), remaining_(length) {}
  ~FileSender() { ::close(fd_); }
  FileSender(const FileSender&) = delete;
  FileSender& operator=(const FileSender&) = delete;

  /** Sends `head` together with the first chunk, then the rest. Blocking-I/O pool. */
  void start(std::string head) { pump(std::move(head)); }

 private:
  void pump(std::string out) {
    while (remaining_ > 0) {
      if (ex_->queued() > ex_->out_high_water) {
        // The drain callback also runs when the connection goes away; pump then stops at write().
        auto resume = [self = shared_from_this()] { core::post_blocking_io([self] { self->pump({}); }); };
        if (ex_->wait_drained(std::move(resume))) return;
        if (ex_->closed()) return;
      }
      std::size_t n = remaining_ < StaticFiles::kChunk ? static_cast<std::size_t>(remaining_) : StaticFiles::kChunk;
      scratch_.resize(n);
      std::size_t got = 0;
      while (got < n) {
        ssize_t r = ::pread(fd_, scratch_.data() + got, n - got, static_cast<off_t>(offset_ + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += static_cast<std::size_t>(r);
      }
      if (got < n) {  // read error, or the file shrank: the announced length cannot be kept
        ex_->abort();
        return;
      }
      offset_ += n;
      remaining_ -= n;
      out.reserve(out.size() + n + 64);
      w_.frame(out, scratch_.data(), n);
      if (remaining_ == 0) out += w_.finish();
      if (!ex_->write(std::move(out), remaining_ == 0)) return;
      out = std::string();
    }
  }

  std::shared_ptr<Exchange> ex_;
  ResponseWriter w_;
  int fd_;
  std::uint64_t offset_, remaining_;
  std::string scratch_;  // one chunk as read; framed into a fresh string for the exchange
};

/** The file for `rel` below `root` (realpath, still below root), following the index for a
 *  directory. Sets `redirect` when a directory was asked for without its trailing '/'. */
std::optional<std::string> resolve(const std::string& root, const std::string& rel, bool dir_request,
                                   const std::string& index, bool& redirect) {
  auto real = real_path(rel.empty() ? root : root + "/" + rel);
  if (!real || !path_within(root, *real)) return std::nullopt;
  struct stat st {};
  if (::stat(real->c_str(), &st) != 0) return std::nullopt;
  if (S_ISDIR(st.st_mode)) {
    if (index.empty()) return std::nullopt;
    if (!dir_request) {
      redirect = true;
      return std::nullopt;
    }
    real = real_path(*real + "/" + index);
    if (!real || !path_within(root, *real) || ::stat(real->c_str(), &st) != 0) return std::nullopt;
  } else if (dir_request) {
    return std::nullopt;  // "file.txt/" names no file
  }
  if (!S_ISREG(st.st_mode)) return std::nullopt;  // no devices, FIFOs or sockets
  return real;
}

/** What a response is made from: an open regular file, or a small file's cached copy. */
struct FileSource {
  int fd = -1;                                    // owned: closed by send_file (or its FileSender)
  std::shared_ptr<const StaticFiles::Cached> mem;  // or the file in memory
};

/** The response's body, [first, first+length) of a cached file, after the head `out`. */
void send_from_memory(std::shared_ptr<Exchange> ex, ResponseWriter w, std::string out,
                      std::shared_ptr<const StaticFiles::Cached> mem, std::uint64_t first, std::uint64_t length,
                      bool on_io_thread) {
  const char* data = mem->body.data() + first;
  auto n = static_cast<std::size_t>(length);
  if (!w.compressing() && length > StaticFiles::kInlineCompressMax) {
    // A larger body goes to the socket from the cache's copy, which the hold keeps alive.
    std::string after;
    n = w.frame_around(out, after, n);
    after += w.finish();
    ex->write_ref(std::move(out), std::string_view(data, n), std::move(mem), std::move(after), true);
    return;
  }
  if (w.compressing() && on_io_thread && length > StaticFiles::kInlineCompressMax) {
    // gzip of a large body takes milliseconds: not on an I/O loop, where every connection waits.
    struct Job {
      std::shared_ptr<Exchange> ex;
      ResponseWriter w;
      std::string out;
      std::shared_ptr<const StaticFiles::Cached> mem;
      std::uint64_t first, length;
    };
    auto job = std::make_shared<Job>(Job{std::move(ex), std::move(w), std::move(out), std::move(mem), first, length});
    core::post_blocking_io([job] {
      send_from_memory(std::move(job->ex), std::move(job->w), std::move(job->out), std::move(job->mem), job->first,
                       job->length, false);
    });
    return;
  }
  w.frame(out, data, n);
  out += w.finish();
  ex->write(std::move(out), true);
}

/** Answers GET/HEAD for a regular file: 304/412 from the preconditions, 416, 206 for one range,
 *  else 200. Takes the source's descriptor (closed here, or by the FileSender streaming it). */
void send_file(const StaticMount& cfg, std::shared_ptr<Exchange> ex, const StaticFiles::Cached& f, FileSource src,
               bool on_io_thread = false) {
  int fd = src.fd;
  bool head = ex->method == "HEAD";
  const FileStamp& stamp = f.stamp;
  const std::string &etag = f.etag, &last_modified = f.last_modified;
  std::string cache_control = cfg.max_age ? "max-age=" + std::to_string(*cfg.max_age) : std::string();
  // The fields a 200 would carry that a 304 must repeat (RFC 9110 §15.4.5); an empty one is skipped.
  Fields validators = {{"ETag", etag}, {"Last-Modified", last_modified}, {"Cache-Control", cache_control}};

  std::string inm_storage, im_storage;
  Conditions c;
  c.if_match = list_header(*ex, "if-match", im_storage);
  c.if_none_match = list_header(*ex, "if-none-match", inm_storage);
  c.if_modified_since = header(*ex, "if-modified-since");
  c.if_unmodified_since = header(*ex, "if-unmodified-since");
  Precondition pre = evaluate_preconditions(c, etag, stamp.mtime_sec);
  if (pre != Precondition::Proceed) {
    if (fd >= 0) ::close(fd);
    if (pre == Precondition::NotModified) {
      reply(*ex, 304, validators);
    } else {
      reply_error(*ex, 412);
    }
    return;
  }

  ByteRange range{0, stamp.size ? stamp.size - 1 : 0};
  RangeResult rr = RangeResult::Full;
  auto range_field = header(*ex, "range");
  auto if_range = header(*ex, "if-range");
  // Range is defined for GET only; several Range lines count as several ranges (sent in full).
  if (!head && range_field && count_header(*ex, "range") == 1 &&
      (!if_range || if_range_matches(*if_range, etag, stamp.mtime_sec))) {
    rr = parse_range(*range_field, stamp.size, range);
  }
  if (rr == RangeResult::Unsatisfiable) {
    if (fd >= 0) ::close(fd);
    std::string unsatisfied = "bytes */" + std::to_string(stamp.size);
    reply_error(*ex, 416, {{"Content-Range", unsatisfied}, {"ETag", etag}, {"Last-Modified", last_modified}});
    return;
  }

  ResponseWriter w(*ex);
  w.set_status(rr == RangeResult::Partial ? 206 : 200);
  for (const auto& [name, value] : validators) {
    if (!value.empty()) w.add_header(name, value);
  }
  w.add_header("Content-Type", f.content_type);
  w.add_header("Accept-Ranges", "bytes");
  w.add_header("X-Content-Type-Options", "nosniff");
  std::uint64_t length = stamp.size;
  if (rr == RangeResult::Partial) {
    length = range.length();
    w.add_header("Content-Range", "bytes " + std::to_string(range.first) + "-" + std::to_string(range.last) + "/" +
                                      std::to_string(stamp.size));
  }
  std::string out = w.head(static_cast<long long>(length));
  if (head || length == 0 || src.mem) {
    if (fd >= 0) ::close(fd);
    if (head || length == 0) {
      out += w.finish();
      ex->write(std::move(out), true);
    } else {
      send_from_memory(std::move(ex), std::move(w), std::move(out), src.mem, range.first, length, on_io_thread);
    }
    return;
  }
  if (ex->sendfile_ok && !w.compressing()) {
    // Plain HTTP/1.x: the kernel sends the file (sendfile); the page cache was warmed by the
    // readahead hint below, so the I/O thread rarely waits for the disk.
    ::posix_fadvise(fd, static_cast<off_t>(range.first), static_cast<off_t>(length), POSIX_FADV_WILLNEED);
    ex->write_file(std::move(out), fd, range.first, length);
    return;
  }
  std::make_shared<FileSender>(std::move(ex), std::move(w), fd, range.first, length)->start(std::move(out));
}

/** Reads exactly `size` bytes from the start of `fd` into `out`; false if the file is shorter. */
bool read_whole(int fd, std::uint64_t size, std::string& out) {
  out.resize(static_cast<std::size_t>(size));
  std::size_t got = 0;
  while (got < out.size()) {
    ssize_t r = ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

std::string cache_key(const std::string& rel, bool dir_request) { return dir_request ? rel + "/" : rel; }

/** Answers one request under `m`'s prefix (`rest`: the path after it). Blocking-I/O pool. */
void serve(const StaticFiles::Mount& m, std::shared_ptr<Exchange> ex, std::string_view rest) {
  auto checked = std::chrono::steady_clock::now();  // before the file-system calls: what they saw is at least this fresh
  bool head = ex->method == "HEAD";
  if (ex->method != "GET" && !head) {
    reply_error(*ex, 405, {{"Allow", "GET, HEAD"}});
    return;
  }
  std::string rel;
  bool dir_request = false;
  PathCheck pc = decode_static_path(rest, rel, dir_request);
  if (pc != PathCheck::Ok) {
    reply_error(*ex, pc == PathCheck::BadRequest ? 400 : 404);
    return;
  }
  bool redirect = false;
  auto file = resolve(m.root, rel, dir_request, m.cfg.index, redirect);
  if (redirect) {
    std::string loc = std::string(ex->path) + "/" + (ex->query.empty() ? "" : "?") + std::string(ex->query);
    reply_error(*ex, 301, {{"Location", loc}});
    return;
  }
  // O_NONBLOCK: should the file be swapped for a FIFO after the check, open() must not hang.
  int fd = file ? ::open(file->c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) : -1;
  struct stat st {};
  if (fd >= 0 && (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
    ::close(fd);
    fd = -1;
  }
  if (fd < 0) {
    reply_error(*ex, 404);
    return;
  }
  auto info = std::make_shared<StaticFiles::Cached>();
  info->stamp = FileStamp{static_cast<std::uint64_t>(st.st_size), st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                          static_cast<std::uint64_t>(st.st_ino)};
  info->etag = make_etag(info->stamp);
  info->last_modified = http_date(info->stamp.mtime_sec);
  info->content_type = content_type_for(*file);
  FileSource src{fd, nullptr};
  if (info->stamp.size <= StaticFiles::kCacheFileMax && read_whole(fd, info->stamp.size, info->body)) {
    // Small: kept in memory, so the next requests for it are answered on the I/O thread. Not a
    // file changed in the last two seconds: it may be being written (truncated, half-written),
    // and a copy of that would be served for a whole second.
    ::close(fd);
    src = FileSource{-1, info};
    info->checked = checked;
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    auto age_ns = (static_cast<std::int64_t>(now.tv_sec) - info->stamp.mtime_sec) * 1'000'000'000LL +
                  (now.tv_nsec - info->stamp.mtime_nsec);
    if (age_ns >= 2'000'000'000LL) m.cache->put(cache_key(rel, dir_request), info);
  }
  send_file(m.cfg, std::move(ex), *info, std::move(src));
}

}  // namespace

StaticFiles::StaticFiles(std::vector<StaticMount> mounts, std::shared_ptr<Handler> next) : next_(std::move(next)) {
  std::vector<Mount> resolved;
  for (auto& m : mounts) {
    if (m.prefix.empty() || m.prefix.front() != '/')
      throw std::runtime_error("static prefix '" + m.prefix + "' must start with '/'");
    if (m.prefix.back() != '/') m.prefix.push_back('/');
    auto root = real_path(m.directory);
    struct stat st {};
    if (!root || ::stat(root->c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw std::runtime_error("static directory '" + m.directory + "' does not exist or is not a directory");
    if (m.index.find('/') != std::string::npos)
      throw std::runtime_error("static index '" + m.index + "' must be a file name");
    resolved.push_back({std::move(m), std::move(*root), std::make_shared<FileCache>()});
  }
  std::stable_sort(resolved.begin(), resolved.end(),
                   [](const Mount& a, const Mount& b) { return a.cfg.prefix.size() > b.cfg.prefix.size(); });
  mounts_ = std::make_shared<const std::vector<Mount>>(std::move(resolved));
}

void StaticFiles::on_request(std::shared_ptr<Exchange> ex) {
  std::string_view path = ex->path;
  for (const Mount& m : *mounts_) {
    std::string_view prefix = m.cfg.prefix;
    if (path.substr(0, prefix.size()) == prefix) {
      if (ex->method == "GET" || ex->method == "HEAD") {
        std::string rel;
        bool dir_request = false;
        if (decode_static_path(path.substr(prefix.size()), rel, dir_request) == PathCheck::Ok) {
          if (auto hit = m.cache->find(cache_key(rel, dir_request), std::chrono::steady_clock::now())) {
            send_file(m.cfg, std::move(ex), *hit, FileSource{-1, hit}, true);
            return;
          }
        }
      }
      // `m` lives in *mounts and `rest` in ex->storage: the captured pointers keep both alive.
      core::post_blocking_io([mounts = mounts_, &m, ex = std::move(ex), rest = path.substr(prefix.size())]() mutable {
        serve(m, std::move(ex), rest);
      });
      return;
    }
    if (prefix.size() > 1 && path == prefix.substr(0, prefix.size() - 1)) {  // "/static" -> "/static/"
      std::string loc = std::string(prefix) + (ex->query.empty() ? "" : "?") + std::string(ex->query);
      reply_error(*ex, 301, {{"Location", loc}});
      return;
    }
  }
  next_->on_request(std::move(ex));
}

std::shared_ptr<const StaticFiles::Cached> StaticFiles::FileCache::find(const std::string& key,
                                                                         std::chrono::steady_clock::time_point now) {
  std::lock_guard<std::mutex> lock(m_);
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  if (now - it->second->checked >= kCacheValid) return nullptr;  // the pool checks the file again
  return it->second;
}

namespace {

/** What an entry costs: its bytes, plus its key, validators and bookkeeping. */
std::size_t footprint(const std::string& key, const StaticFiles::Cached& f) {
  return f.body.size() + key.size() + f.etag.size() + f.last_modified.size() + f.content_type.size() + 256;
}

}  // namespace

void StaticFiles::FileCache::put(const std::string& key, std::shared_ptr<const Cached> f) {
  std::lock_guard<std::mutex> lock(m_);
  auto it = map_.find(key);
  if (it != map_.end()) {
    // Two pool threads may read one file at once: the copy checked last wins.
    if (it->second->checked > f->checked) return;
    bytes_ -= footprint(it->first, *it->second);
    map_.erase(it);
  }
  std::size_t need = footprint(key, *f);
  if (bytes_ + need > kCacheBytes) {
    // Over budget: stale entries go first, then any, down to three quarters of the budget so
    // that the next puts do not scan again (an entry in use stays alive for its request).
    auto now = std::chrono::steady_clock::now();
    for (auto i = map_.begin(); i != map_.end();) {
      if (now - i->second->checked >= kCacheValid) {
        bytes_ -= footprint(i->first, *i->second);
        i = map_.erase(i);
      } else {
        ++i;
      }
    }
    while (!map_.empty() && bytes_ + need > kCacheBytes / 4 * 3) {
      bytes_ -= footprint(map_.begin()->first, *map_.begin()->second);
      map_.erase(map_.begin());
    }
  }
  bytes_ += need;
  map_.emplace(key, std::move(f));
}

}  // namespace puff::http
