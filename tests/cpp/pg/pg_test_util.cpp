#include "pg_test_util.hpp"

#include <cctype>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace pgtest {

// ---- ScratchPostgres ---------------------------------------------------------------------------

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

bool sh(const std::string& cmd) { return std::system(cmd.c_str()) == 0; }

}  // namespace

std::string ScratchPostgres::as_pg(const std::string& cmd) const {
  // cd /: the server user may not be able to read our working directory.
  return root_ ? "cd / && runuser -u postgres -- " + cmd : "cd / && " + cmd;
}

ScratchPostgres::ScratchPostgres() {
  const char* b = std::getenv("PUFF_PG_BIN");
  bin_ = b ? b : "/usr/lib/postgresql/15/bin";
  if (::access((bin_ + "/initdb").c_str(), X_OK) != 0) {
    error_ = bin_ + "/initdb not found";
    return;
  }
  root_ = ::geteuid() == 0;
  char tmpl[] = "/tmp/puff-pgtest-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    error_ = "mkdtemp failed";
    return;
  }
  dir_ = tmpl;
  if (root_) {
    struct passwd* pw = ::getpwnam("postgres");
    if (!pw || ::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      error_ = "no postgres user to run the server as";
      return;
    }
  }
  if (!sh(as_pg(bin_ + "/initdb -D " + dir_ + "/data -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >" +
                dir_ + "/initdb.log 2>&1"))) {
    error_ = "initdb failed (see " + dir_ + "/initdb.log)";
    return;
  }
  port_ = free_port();
  if (!start()) {
    error_ = "pg_ctl start failed (see " + dir_ + "/server.log)";
    return;
  }
  url_ = "postgres://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres";
}

bool ScratchPostgres::start() {
  // fsync off (no OS crash here); synchronous_commit stays on so a reported COMMIT survives an
  // immediate stop.
  return sh(as_pg(bin_ + "/pg_ctl -D " + dir_ + "/data -l " + dir_ + "/server.log -w -t 30 -s -o \"-p " +
                  std::to_string(port_) + " -k " + dir_ + " -c listen_addresses=127.0.0.1 -c fsync=off\" start >/dev/null 2>&1"));
}

bool ScratchPostgres::stop(const char* mode) {
  return sh(as_pg(bin_ + "/pg_ctl -D " + dir_ + "/data -m " + mode + " -w -t 30 -s stop >/dev/null 2>&1"));
}

ScratchPostgres::~ScratchPostgres() {
  if (dir_.empty()) return;
  if (!url_.empty()) stop("immediate");
  sh("rm -rf '" + dir_ + "'");
}

// ---- FakeServer --------------------------------------------------------------------------------

namespace {

bool read_n(int fd, char* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_all(int fd, const std::string& s) {
  const char* p = s.data();
  std::size_t n = s.size();
  while (n > 0) {
    ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

std::string be32(std::uint32_t v) {
  v = htonl(v);
  return std::string(reinterpret_cast<const char*>(&v), 4);
}

std::string msg(char type, const std::string& body) { return std::string(1, type) + be32(static_cast<std::uint32_t>(body.size() + 4)) + body; }

std::string param(const char* k, const char* v) { return msg('S', std::string(k) + '\0' + v + '\0'); }

std::string upper_first_word(const std::string& q) {
  std::string w;
  std::size_t i = 0;
  while (i < q.size() && std::isspace(static_cast<unsigned char>(q[i]))) ++i;
  while (i < q.size() && std::isalpha(static_cast<unsigned char>(q[i]))) w.push_back(static_cast<char>(std::toupper(q[i++])));
  return w;
}

}  // namespace

FakeServer::FakeServer(OnCommit mode) : mode_(mode) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(listen_fd_, 8);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { run(); });
}

FakeServer::~FakeServer() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

void FakeServer::run() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    serve(fd);
    ::close(fd);
  }
}

bool FakeServer::serve(int fd) {
  // Startup: SSLRequest/GSSENCRequest get 'N', then the StartupMessage.
  for (;;) {
    char hdr[8];
    if (!read_n(fd, hdr, 4)) return false;
    std::uint32_t len;
    std::memcpy(&len, hdr, 4);
    len = ntohl(len);
    if (len < 8 || len > 10000) return false;
    std::vector<char> body(len - 4);
    if (!read_n(fd, body.data(), body.size())) return false;
    std::uint32_t code;
    std::memcpy(&code, body.data(), 4);
    code = ntohl(code);
    if (code == 80877103 || code == 80877104) {
      if (!write_all(fd, "N")) return false;
      continue;
    }
    break;
  }
  std::string hello = msg('R', be32(0)) + param("server_version", "15.0") + param("client_encoding", "UTF8") +
                      param("standard_conforming_strings", "on") + param("integer_datetimes", "on") +
                      msg('K', be32(4242) + be32(1)) + msg('Z', "I");
  if (!write_all(fd, hello)) return false;
  std::map<std::string, std::string> statements;  // name -> SQL
  std::string portal_sql;
  char txn = 'I';
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    while (::poll(&p, 1, 50) == 0)
      if (stop_) return false;
    char type;
    if (!read_n(fd, &type, 1)) return false;
    char lenb[4];
    if (!read_n(fd, lenb, 4)) return false;
    std::uint32_t len;
    std::memcpy(&len, lenb, 4);
    len = ntohl(len);
    std::string body(len - 4, '\0');
    if (!read_n(fd, body.data(), body.size())) return false;
    switch (type) {
      case 'P': {  // Parse: name, query
        std::string name = body.c_str();
        std::string query = body.c_str() + name.size() + 1;
        statements[name] = query;
        if (!write_all(fd, msg('1', ""))) return false;
        break;
      }
      case 'B': {  // Bind: portal, statement
        std::string portal = body.c_str();
        std::string stmt = body.c_str() + portal.size() + 1;
        portal_sql = statements[stmt];
        if (!write_all(fd, msg('2', ""))) return false;
        break;
      }
      case 'D':
        if (!write_all(fd, msg('n', ""))) return false;
        break;
      case 'E': {
        std::string w = upper_first_word(portal_sql);
        if (w == "COMMIT") {
          if (mode_ == OnCommit::AnswerThenDrop) write_all(fd, msg('C', std::string("COMMIT") + '\0'));
          // Drop before ReadyForQuery (or before any answer), with a FIN: read what the client
          // sent meanwhile first, or the kernel answers with a RST that discards our last words.
          ::shutdown(fd, SHUT_WR);
          char sink[4096];
          pollfd pd{fd, POLLIN, 0};
          while (::poll(&pd, 1, 200) > 0 && ::read(fd, sink, sizeof sink) > 0) {
          }
          return false;
        }
        std::string tag = w == "INSERT" ? "INSERT 0 1" : w == "SELECT" ? "SELECT 0" : w;
        if (w == "BEGIN") txn = 'T';
        if (w == "ROLLBACK") txn = 'I';
        if (!write_all(fd, msg('C', tag + '\0'))) return false;
        break;
      }
      case 'S':
        if (!write_all(fd, msg('Z', std::string(1, txn)))) return false;
        break;
      case 'C':
        if (!write_all(fd, msg('3', ""))) return false;
        break;
      case 'X':
        return true;
      default:
        break;  // 'H' (Flush) and anything else: nothing to say
    }
  }
}

}  // namespace pgtest
