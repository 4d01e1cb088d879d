#include "service/git/libgit2.hpp"

#include <mutex>

#include "service/git/socket_stream.hpp"

namespace tollgate::git::lg {

void init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    git_libgit2_init();
    (void)register_socket_stream();  // without it, libgit2's own socket stream (Nagle on) is used
  });
}

std::string error_message(int code) {
  const git_error* e = git_error_last();
  std::string msg = (e != nullptr && e->message != nullptr) ? e->message : "libgit2 error " + std::to_string(code);
  for (char& c : msg) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!msg.empty() && msg.back() == ' ') msg.pop_back();
  return msg;
}

int error_class() {
  const git_error* e = git_error_last();
  return e != nullptr ? e->klass : GIT_ERROR_NONE;
}

std::string to_hex(const git_oid& oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, &oid);
  return buf;
}

}  // namespace tollgate::git::lg
