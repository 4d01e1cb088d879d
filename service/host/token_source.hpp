#pragma once
// Where a host client's token comes from; shared by the GitHub, GitLab and Gitea clients.
#include <string>
#include <utility>

#include "service/host/host.hpp"

namespace tollgate::service::host {

// A fixed token (StaticToken), or one minted and renewed (GitHubAppToken).
class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // The token itself; each host puts it in its own header ("Bearer ...", "token ...", PRIVATE-TOKEN).
  [[nodiscard]] virtual HostResult<std::string> token() = 0;
};

class StaticToken final : public TokenSource {
 public:
  explicit StaticToken(std::string token) : token_(std::move(token)) {}
  [[nodiscard]] HostResult<std::string> token() override { return token_; }

 private:
  std::string token_{};
};

}  // namespace tollgate::service::host
