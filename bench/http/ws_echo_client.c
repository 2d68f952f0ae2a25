/* ws_echo_client: WebSocket echo load for bench/http, the WebSocket counterpart of wrk.
 *
 *   ws_echo_client HOST PORT PATH CONNECTIONS SECONDS MESSAGE_BYTES
 *
 * One thread, epoll, CONNECTIONS connections. Each does the RFC 6455 upgrade, then keeps exactly
 * one masked text message in flight: it sends the next as soon as the echo of the previous has
 * fully arrived (so the rate is bounded by the server, not by queueing). After SECONDS it prints
 * one JSON line: messages echoed, elapsed seconds, errors, and round-trip percentiles (us).
 * Written in C so that the client costs little of the 2 cores it shares with the server.
 * Exit status 0 on success, 1 if no connection completed the handshake, 2 on usage errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kHandshake, kOpen, kDead };
enum { kMaxPayload = 65536, kBuf = kMaxPayload + 64, kHistUs = 1000000 };

typedef struct {
  int fd;
  int state;
  uint8_t in[kBuf];
  size_t in_len;
  uint64_t sent_ns;
} Conn;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint8_t frame[kBuf];
static size_t frame_len;
static size_t payload_len;
static uint32_t *hist; /* round trips by microsecond; the last bucket is ">= 1 s" */
static uint64_t messages, errors;

/* Writes all of buf on a blocking-enough socket: frames are small, the send buffer has room. */
static int send_all(int fd, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) continue; /* rare: spin until the kernel takes it */
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static void build_frame(void) {
  static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  size_t i = 0;
  frame[i++] = 0x81; /* FIN, text */
  if (payload_len < 126) {
    frame[i++] = 0x80 | (uint8_t)payload_len;
  } else {
    frame[i++] = 0x80 | 126;
    frame[i++] = (uint8_t)(payload_len >> 8);
    frame[i++] = (uint8_t)payload_len;
  }
  memcpy(frame + i, mask, 4);
  i += 4;
  for (size_t k = 0; k < payload_len; k++) frame[i + k] = (uint8_t)('a' + k % 26) ^ mask[k % 4];
  frame_len = i + payload_len;
}

static void kill_conn(Conn *c) {
  if (c->state != kDead) {
    close(c->fd);
    c->state = kDead;
    errors++;
  }
}

static int send_message(Conn *c) {
  c->sent_ns = now_ns();
  return send_all(c->fd, frame, frame_len);
}

/* Consumes complete server frames from c->in; returns -1 on a protocol error. */
static int on_frames(Conn *c) {
  size_t off = 0;
  for (;;) {
    size_t avail = c->in_len - off;
    if (avail < 2) break;
    const uint8_t *p = c->in + off;
    size_t len = p[1] & 0x7f, head = 2;
    if (p[1] & 0x80) return -1; /* servers must not mask */
    if (len == 126) {
      if (avail < 4) break;
      len = ((size_t)p[2] << 8) | p[3];
      head = 4;
    } else if (len == 127) {
      return -1; /* larger than anything we send */
    }
    if (avail < head + len) break;
    int opcode = p[0] & 0x0f;
    off += head + len;
    if (opcode == 0x8) return -1;       /* close */
    if (opcode == 0x9 || opcode == 0xA) /* ping/pong: ignore (servers' keep-alive pings) */
      continue;
    if (len != payload_len) return -1;
    uint64_t us = (now_ns() - c->sent_ns) / 1000;
    hist[us < kHistUs ? us : kHistUs]++;
    messages++;
    if (send_message(c) < 0) return -1;
  }
  memmove(c->in, c->in + off, c->in_len - off);
  c->in_len -= off;
  return 0;
}

static int on_handshake(Conn *c) {
  uint8_t *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
  if (!end) return c->in_len >= sizeof c->in ? -1 : 0;
  if (c->in_len < 12 || memcmp(c->in + 9, "101", 3) != 0) return -1;
  size_t used = (size_t)(end + 4 - c->in);
  memmove(c->in, c->in + used, c->in_len - used);
  c->in_len -= used;
  c->state = kOpen;
  if (send_message(c) < 0) return -1;
  return on_frames(c);
}

static double percentile(double q) {
  uint64_t want = (uint64_t)(q * (double)messages), seen = 0;
  for (int us = 0; us <= kHistUs; us++) {
    seen += hist[us];
    if (seen > want) return us;
  }
  return kHistUs;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s HOST PORT PATH CONNECTIONS SECONDS MESSAGE_BYTES\n", argv[0]);
    return 2;
  }
  const char *host = argv[1], *port = argv[2], *path = argv[3];
  int nconn = atoi(argv[4]);
  double seconds = atof(argv[5]);
  payload_len = (size_t)atol(argv[6]);
  if (nconn < 1 || seconds <= 0 || payload_len < 1 || payload_len > kMaxPayload) return 2;
  hist = calloc(kHistUs + 1, sizeof *hist);
  Conn *conns = calloc((size_t)nconn, sizeof *conns);
  if (!hist || !conns) return 2;
  build_frame();

  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
  if (getaddrinfo(host, port, &hints, &ai) != 0) return 2;
  char request[512];
  int req_len = snprintf(request, sizeof request,
                         "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         path, host, port);
  int ep = epoll_create1(0);
  for (int i = 0; i < nconn; i++) {
    Conn *c = &conns[i];
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        send_all(c->fd, request, (size_t)req_len) < 0) {
      kill_conn(c);
      continue;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  freeaddrinfo(ai);

  uint64_t start = now_ns(), deadline = start + (uint64_t)(seconds * 1e9);
  struct epoll_event events[256];
  for (;;) {
    uint64_t t = now_ns();
    if (t >= deadline) break;
    int n = epoll_wait(ep, events, 256, (int)((deadline - t) / 1000000) + 1);
    for (int i = 0; i < n; i++) {
      Conn *c = events[i].data.ptr;
      if (c->state == kDead) continue;
      ssize_t got = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0) {
        kill_conn(c);
        continue;
      }
      c->in_len += (size_t)got;
      int rc = c->state == kHandshake ? on_handshake(c) : on_frames(c);
      if (rc < 0) kill_conn(c);
    }
  }
  double elapsed = (double)(now_ns() - start) / 1e9;
  int open = 0;
  for (int i = 0; i < nconn; i++) open += conns[i].state == kOpen;
  printf("{\"messages\": %llu, \"seconds\": %.4f, \"errors\": %llu, \"open\": %d, "
         "\"p50_us\": %.0f, \"p99_us\": %.0f}\n",
         (unsigned long long)messages, elapsed, (unsigned long long)errors, open,
         messages ? percentile(0.50) : 0.0, messages ? percentile(0.99) : 0.0);
  return messages ? 0 : 1;
}
