// libgit2's plain socket stream, replaced by one that sets TCP_NODELAY.
//
// libgit2 1.5 writes an HTTP push as many small writes (each chunk of the chunked body, its size
// line and its CRLF separately). With Nagle's algorithm on, the last of them waits for the
// peer's delayed ACK (40 ms on Linux) before it leaves, so every push took ~40 ms longer than
// the same push by the git CLI (curl sets TCP_NODELAY). libgit2's TLS stream builds on the
// registered standard stream, so HTTPS gets the same treatment.
#include "service/git/socket_stream.hpp"

#include <git2.h>
#include <git2/sys/stream.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace tollgate::git::lg {

namespace {

struct SocketStream {
  git_stream parent;  // first: libgit2 hands back a git_stream*
  std::string host;
  std::string port;
  int fd = -1;
};

SocketStream* self(git_stream* s) { return reinterpret_cast<SocketStream*>(s); }

void set_net_error(const std::string& what) {
  git_error_set_str(GIT_ERROR_NET, what.c_str());
}

int stream_connect(git_stream* s) {
  auto* st = self(s);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(st->host.c_str(), st->port.c_str(), &hints, &found); rc != 0) {
    set_net_error("failed to resolve address for " + st->host + ": " + ::gai_strerror(rc));
    return -1;
  }
  int last_errno = 0;
  for (addrinfo* p = found; p != nullptr; p = p->ai_next) {
    int fd = ::socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
    if (fd < 0) {
      last_errno = errno;
      continue;
    }
    if (::connect(fd, p->ai_addr, p->ai_addrlen) == 0) {
      st->fd = fd;
      break;
    }
    last_errno = errno;
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (st->fd < 0) {
    set_net_error("failed to connect to " + st->host + ": " + std::strerror(last_errno));
    return -1;
  }
  int one = 1;
  (void)::setsockopt(st->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return 0;
}

ssize_t stream_read(git_stream* s, void* data, size_t len) {
  ssize_t n;
  do {
    n = ::recv(self(s)->fd, data, len, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) set_net_error(std::string("error receiving data from socket: ") + std::strerror(errno));
  return n;
}

ssize_t stream_write(git_stream* s, const char* data, size_t len, int /*flags*/) {
  ssize_t n;
  do {
    n = ::send(self(s)->fd, data, len, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) set_net_error(std::string("error sending data over socket: ") + std::strerror(errno));
  return n;
}

int stream_close(git_stream* s) {
  auto* st = self(s);
  if (st->fd >= 0) ::close(st->fd);
  st->fd = -1;
  return 0;
}

void stream_free(git_stream* s) {
  auto* st = self(s);
  if (st->fd >= 0) ::close(st->fd);
  delete st;
}

int stream_new(git_stream** out, const char* host, const char* port) {
  auto* st = new SocketStream{};
  st->parent.version = GIT_STREAM_VERSION;
  st->parent.encrypted = 0;
  st->parent.proxy_support = 0;
  st->parent.connect = stream_connect;
  st->parent.read = stream_read;
  st->parent.write = stream_write;
  st->parent.close = stream_close;
  st->parent.free = stream_free;
  st->host = host != nullptr ? host : "";
  st->port = port != nullptr ? port : "";
  *out = &st->parent;
  return 0;
}

}  // namespace

int register_socket_stream() {
  git_stream_registration registration{};
  registration.version = GIT_STREAM_VERSION;
  registration.init = stream_new;
  registration.wrap = nullptr;
  return git_stream_register(GIT_STREAM_STANDARD, &registration);
}

}  // namespace tollgate::git::lg
