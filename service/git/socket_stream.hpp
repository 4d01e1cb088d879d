#pragma once
// A TCP stream for libgit2 with TCP_NODELAY (see socket_stream.cpp for why).
namespace tollgate::git::lg {

// Registers it as libgit2's standard stream; called once from init_once(). 0 on success.
int register_socket_stream();

}  // namespace tollgate::git::lg
