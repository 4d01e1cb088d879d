#pragma once
// The GitHub (and GitHub Enterprise) REST API as a Host.
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "service/host/host.hpp"
#include "service/host/http_client.hpp"
#include "service/host/rest_util.hpp"
#include "service/host/token_source.hpp"

namespace tollgate::service::host {

struct GitHubAppOptions {
  std::string api_url = "https://api.github.com";
  std::string app_id{};  // or the client ID: the JWT's "iss"
  std::string private_key_pem{};
  std::int64_t installation_id = 0;
  std::chrono::seconds renew_before{5 * 60};
  std::function<std::int64_t()> now_epoch{};  // seconds; default: the system clock
};

// A JWT (RS256, iat = now - 60 s, exp = now + 9 min) exchanged for an installation token via
// POST /app/installations/{id}/access_tokens, cached until `renew_before` its expiry.
class GitHubAppToken final : public TokenSource {
 public:
  GitHubAppToken(HttpClient& client, GitHubAppOptions options);
  [[nodiscard]] HostResult<std::string> token() override;
  [[nodiscard]] HostResult<std::string> jwt() const;

 private:
  HttpClient& client_;
  GitHubAppOptions options_;
  std::mutex mutex_{};
  std::string token_{};
  std::int64_t expires_at_ = 0;
};

// RS256 JWT over `payload_json` with a PEM RSA key; for GitHub App auth.
[[nodiscard]] tl::expected<std::string, std::string> sign_jwt_rs256(const std::string& payload_json, const std::string& private_key_pem);

struct GitHubHostOptions {
  std::string api_url = "https://api.github.com";  // no trailing slash
  int create_attempts = 3;  // find-then-post rounds for non-idempotent creates (comments)
  int per_page = 100;       // list pages; Link rel="next" is followed
};

class GitHubHost final : public Host {
 public:
  GitHubHost(HttpClient& client, std::shared_ptr<TokenSource> auth, GitHubHostOptions options = {});

  [[nodiscard]] HostResult<Repository> get_repository(const RepoRef& repo) override;
  [[nodiscard]] HostResult<std::string> current_user() override;
  // A check run (annotations in pages of 50); an earlier one of the same name on the sha is updated.
  [[nodiscard]] HostResult<void> publish_check(const RepoRef& repo, const std::string& sha, const CheckReport& report) override;
  [[nodiscard]] HostResult<std::optional<PullRequest>> find_pull_request(const RepoRef& repo, const std::string& head_branch) override;
  [[nodiscard]] HostResult<PullRequest> create_pull_request(const RepoRef& repo, const NewPullRequest& pr) override;
  [[nodiscard]] HostResult<PullRequest> update_pull_request(const RepoRef& repo, std::int64_t number, const PullRequestUpdate& update) override;
  [[nodiscard]] HostResult<PullRequest> close_pull_request(const RepoRef& repo, std::int64_t number) override;
  [[nodiscard]] HostResult<PullRequest> get_pull_request(const RepoRef& repo, std::int64_t number) override;
  [[nodiscard]] HostResult<MergeResult> merge_pull_request(const RepoRef& repo, std::int64_t number, const std::string& expected_head_sha,
                                                           MergeMethod method, const std::string& commit_title = {}) override;
  using Host::upsert_sticky_comment;
  [[nodiscard]] HostResult<Comment> upsert_sticky_comment(const RepoRef& repo, std::int64_t number, const std::string& key,
                                                          const std::string& body, const StickyHint& hint) override;
  [[nodiscard]] HostResult<void> add_reaction(const RepoRef& repo, std::int64_t number, std::int64_t comment_id,
                                             const std::string& content) override;
  [[nodiscard]] HostResult<void> set_commit_status(const RepoRef& repo, const std::string& sha, const CommitStatus& status) override;
  [[nodiscard]] HostResult<Checks> get_checks(const RepoRef& repo, const std::string& ref) override;
  [[nodiscard]] HostResult<std::vector<Review>> list_reviews(const RepoRef& repo, std::int64_t number) override;
  [[nodiscard]] HostResult<Permission> user_permission(const RepoRef& repo, const std::string& login) override;
  [[nodiscard]] HostResult<bool> is_team_member(const std::string& org, const std::string& team, const std::string& login) override;
  [[nodiscard]] HostResult<std::optional<std::string>> read_file(const RepoRef& repo, const std::string& path, const std::string& ref) override;
  [[nodiscard]] HostResult<std::vector<ChangedFile>> list_changed_files(const RepoRef& repo, std::int64_t number) override;

 private:
  GitHubHostOptions options_;
  rest::Client api_;
};

}  // namespace tollgate::service::host
