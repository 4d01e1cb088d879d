#pragma once
// The GitLab REST API v4 (gitlab.com or self-managed) as a Host: merge requests stand for pull requests.
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

struct GitLabHostOptions {
  std::string api_url = "https://gitlab.com/api/v4";  // no trailing slash
  // How the token is sent: a personal/project/group access token as PRIVATE-TOKEN, or an OAuth
  // token as "Authorization: Bearer".
  enum class Auth { private_token, bearer };
  Auth auth = Auth::private_token;
  int create_attempts = 3;  // find-then-post rounds for notes
  int per_page = 100;       // list pages; Link rel="next" (else x-next-page) is followed
};

// RepoRef{owner, name} is the project "owner/name"; `owner` may hold nested groups ("a/b").
// PR numbers are merge request IIDs; comments are MR notes; teams are subgroups "org/team".
class GitLabHost final : public Host {
 public:
  GitLabHost(HttpClient& client, std::shared_ptr<TokenSource> auth, GitLabHostOptions options = {});

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
  HostResult<std::vector<PullRequest>> list_merge_requests(const RepoRef& repo, const std::string& head_branch, const char* state);
  HostResult<std::optional<std::int64_t>> user_id(const std::string& username);  // nullopt: no such user

  GitLabHostOptions options_;
  rest::Client api_;
};

}  // namespace tollgate::service::host
