// The pure rules of static-file serving: URL path to a safe relative file path, Content-Type by
// extension, validators (ETag, Last-Modified), conditional requests (RFC 9110 §13) and byte
// ranges (RFC 9110 §14). No I/O, no Asio, no Python; any thread. The handler that applies them is
// http/static_files.hpp; every decision is in docs/static-and-cors.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace puff::http {

// ---- paths ------------------------------------------------------------------------------------------

enum class PathCheck { Ok, BadRequest, NotFound };

/** Decodes the part of a request path below a mount's prefix (as sent: percent-encoded, no
 *  query) into `out`: '/'-separated segments, empty and "." segments dropped, no leading '/'.
 *  BadRequest: a malformed %-escape, or a NUL byte once decoded. NotFound: a ".." segment, a
 *  backslash, or a segment starting with '.' other than ".well-known" (hidden files are never
 *  served). `dir_request` is set when the path ends with '/' (or is empty). */
PathCheck decode_static_path(std::string_view encoded, std::string& out, bool& dir_request);

/** True if the absolute, normalized `path` is `root` or lies below it ("/a/bc" is not below "/a/b"). */
bool path_within(std::string_view root, std::string_view path);

/** The Content-Type for a file name, by its extension (case-insensitive); text types carry
 *  "; charset=utf-8"; unknown: "application/octet-stream". */
std::string_view content_type_for(std::string_view filename);

// ---- validators -----------------------------------------------------------------------------------

/** What identifies one version of a file. */
struct FileStamp {
  std::uint64_t size = 0;
  std::int64_t mtime_sec = 0;
  std::int64_t mtime_nsec = 0;
  std::uint64_t inode = 0;
};

/** A strong entity-tag (quotes included) from the inode, size and mtime. */
std::string make_etag(const FileStamp& f);

/** The IMF-fixdate for a Unix time ("Sun, 06 Nov 1994 08:49:37 GMT"). */
std::string http_date(std::int64_t unix_seconds);

/** Parses an HTTP-date in any of RFC 9110 §5.6.7's three forms (IMF-fixdate, RFC 850, asctime). */
std::optional<std::int64_t> parse_http_date(std::string_view s);

/** True if the entity-tag list `header` ("*" or "\"a\", W/\"b\"") matches `etag`. Weak
 *  comparison ignores W/ on both sides; strong comparison fails on any weak tag. */
bool etag_list_matches(std::string_view header, std::string_view etag, bool weak);

// ---- conditional requests --------------------------------------------------------------------------

/** The precondition header fields of a GET or HEAD request (nullopt: absent). */
struct Conditions {
  std::optional<std::string_view> if_match, if_none_match, if_modified_since, if_unmodified_since;
};

enum class Precondition { Proceed, NotModified, Failed };

/** RFC 9110 §13.2.2's order for GET/HEAD: If-Match (strong) or else If-Unmodified-Since fail with
 *  412; If-None-Match (weak) or else If-Modified-Since give 304. Invalid dates are ignored. */
Precondition evaluate_preconditions(const Conditions& c, std::string_view etag, std::int64_t mtime_sec);

// ---- byte ranges ----------------------------------------------------------------------------------

struct ByteRange {
  std::uint64_t first = 0, last = 0;  // inclusive
  std::uint64_t length() const { return last - first + 1; }
};

/** Full: serve the whole representation (no Range, another unit, a malformed value, or several
 *  ranges: a multipart/byteranges answer is not offered). Partial: `out` is the one range, clamped
 *  to the file. Unsatisfiable: answer 416 with an unsatisfied-range Content-Range ("bytes *", "/", size). */
enum class RangeResult { Full, Partial, Unsatisfiable };

/** Parses a Range field value ("bytes=0-99", "bytes=100-", "bytes=-100") against `size`. */
RangeResult parse_range(std::string_view header, std::uint64_t size, ByteRange& out);

/** If-Range (RFC 9110 §13.1.5): true when the Range may be honoured: the value is a strong
 *  entity-tag equal to `etag`, or a date equal to the Last-Modified time. */
bool if_range_matches(std::string_view if_range, std::string_view etag, std::int64_t mtime_sec);

}  // namespace puff::http
