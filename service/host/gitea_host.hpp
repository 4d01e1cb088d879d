#pragma once
// The Gitea (and Forgejo) REST API v1 as a Host; mostly GitHub-shaped.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "service/host/host.hpp"
#include "service/host/http_client.hpp"
#include "service/host/rest_util.hpp"
#include "service/host/token_source.hpp"

namespace tollgate::service::host {

struct GiteaHostOptions {
  std::string api_url = "https://gitea.com/api/v1";  // no trailing slash
  int create_attempts = 3;  // find-then-post rounds for comments
  int limit = 50;           // page size (Gitea caps it at its MAX_RESPONSE_ITEMS, 50 by default)
  // Gitea cannot list pulls by head branch: find_pull_request reads every open page, then at
  // most this many pages of closed ones (most recently updated first).
  int closed_pages = 2;
};

class GiteaHost final : public Host {
 public:
  GiteaHost(HttpClient& client, std::shared_ptr<TokenSource> auth, GiteaHostOptions options = {});

  [[nodiscard]] HostResult<Repository> get_repository(const RepoRef& repo) override;
  [[nodiscard]] HostResult<std::string> current_user() override;
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
  HostResult<std::vector<PullRequest>> open_pulls_for(const RepoRef& repo, const std::string& head_branch);
  // Gitea takes label IDs: names are looked up in the repository's labels.
  HostResult<std::vector<std::int64_t>> label_ids(const RepoRef& repo, const std::vector<std::string>& names);

  GiteaHostOptions options_;
  rest::Client api_;
};

}  // namespace tollgate::service::host
