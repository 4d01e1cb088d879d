#include "service/git/git_writer.hpp"

#include <functional>
#include <system_error>

#include "service/git/libgit2.hpp"
#include "service/git/remote_ops.hpp"
#include "service/git/repo_url.hpp"
#include "service/git/tree_edits.hpp"
#include "service/host/http_client.hpp"
#include "service/log.hpp"

namespace tollgate::git {
namespace log = tollgate::service::log;
namespace {

tl::expected<std::monostate, Error> validate(const PromotionRequest& req) {
  auto valid_branch = [](const std::string& b) {
    int valid = 0;
    return !b.empty() && git_reference_name_is_valid(&valid, ("refs/heads/" + b).c_str()) == 0 && valid != 0;
  };
  if (!valid_branch(req.base_branch)) {
    return tl::unexpected(Error{ErrorKind::invalid_request, "invalid base branch '" + req.base_branch + "'"});
  }
  if (!valid_branch(req.target_branch) || req.target_branch == req.base_branch) {
    return tl::unexpected(Error{ErrorKind::invalid_request, "invalid target branch '" + req.target_branch + "'"});
  }
  if (req.message.empty()) return tl::unexpected(Error{ErrorKind::invalid_request, "empty commit message"});
  for (const Edit& e : req.edits) {
    if (const auto* copy = std::get_if<CopyEdit>(&e)) {
      git_oid id{};
      if (copy->source_sha.size() != GIT_OID_HEXSZ || git_oid_fromstr(&id, copy->source_sha.c_str()) < 0) {
        return tl::unexpected(Error{ErrorKind::invalid_request, "copy: invalid source sha '" + copy->source_sha + "'"});
      }
      if (auto u = parse_repo_url(copy->source_url); !u) {
        return tl::unexpected(Error{ErrorKind::invalid_request, "copy: invalid source url: " + u.error()});
      }
    }
  }
  return std::monostate{};
}

}  // namespace

// libgit2 is initialised at the first operation, not here: its start-up loads the system's CA
// certificates (~1.6 MB), which a service that promotes nothing yet does not need.
GitWriter::GitWriter(GitWriterOptions options) : options_(std::move(options)) {
  if (options_.smart_http) {
    // Retries are the writer's (with_retries): one attempt per call here. A "git/" user agent is
    // what hosts expect of a git client on their smart HTTP endpoints.
    http_ = std::make_unique<service::host::HttpClient>(service::host::HttpClientOptions{
        .timeout = std::chrono::seconds(60), .max_attempts = 1, .user_agent = "git/2.0 (tollgate)"});
  }
}

GitWriter::~GitWriter() = default;

GitWriterStats GitWriter::stats() const {
  return GitWriterStats{.fetches = counters_.fetches.load(),
                        .v2_fetches = counters_.v2_fetches.load(),
                        .up_to_date_fetches = counters_.up_to_date_fetches.load(),
                        .pushes = counters_.pushes.load(),
                        .pushes_without_advertisement = counters_.pushes_without_advertisement.load(),
                        .credential_requests = counters_.credential_requests.load(),
                        .retries = counters_.retries.load()};
}

std::shared_ptr<std::mutex> GitWriter::mirror_lock(const std::string& mirror_path) {
  std::lock_guard guard(locks_mutex_);
  auto& slot = locks_[mirror_path];
  if (!slot) slot = std::make_shared<std::mutex>();
  return slot;
}

tl::expected<CopySource, Error> GitWriter::read_copy_source(const CopyEdit& edit, const Credentials& fallback) {
  lg::init_once();
  auto url = parse_repo_url(edit.source_url);
  if (!url) return tl::unexpected(Error{ErrorKind::invalid_request, "copy: invalid source url: " + url.error()});
  const std::string name = url->full_name();
  const auto mirror_path = options_.data_dir / "mirrors" / url->mirror_dir();
  auto lock = mirror_lock(mirror_path.string());
  std::lock_guard guard(*lock);
  bool created = false;
  auto repo = open_mirror(mirror_path, name, created);
  if (!repo) return tl::unexpected(repo.error());

  git_oid id{};
  git_oid_fromstr(&id, edit.source_sha.c_str());  // checked by validate()
  git_commit* raw_commit = nullptr;
  // A commit never changes: when the mirror has it, there is nothing to fetch.
  if (git_commit_lookup(&raw_commit, repo->get(), &id) < 0) {
    const Credentials& credentials = edit.source_credentials.token.empty() ? fallback : edit.source_credentials;
    const Remote remote{*url, edit.source_url, credentials, options_, counters_};
    if (auto fetched = fetch_all_branches(repo->get(), remote); !fetched) return tl::unexpected(fetched.error());
    if (git_commit_lookup(&raw_commit, repo->get(), &id) < 0) {
      return tl::unexpected(Error{ErrorKind::not_found, "repo '" + name + "': copy: commit '" + edit.source_sha +
                                                            "' not found on any branch"});
    }
  }
  lg::Commit commit(raw_commit);
  git_tree* raw_tree = nullptr;
  if (int rc = git_commit_tree(&raw_tree, commit.get()); rc < 0) {
    return tl::unexpected(Error{ErrorKind::other, "repo '" + name + "': copy: " + lg::error_message(rc)});
  }
  lg::Tree tree(raw_tree);
  return git::read_copy_source(repo->get(), tree.get(), edit.from, name);
}

tl::expected<PromotionResult, Error> GitWriter::promote(const PromotionRequest& req) {
  lg::init_once();
  auto url = parse_repo_url(req.url);
  if (!url) return tl::unexpected(Error{ErrorKind::invalid_request, "invalid repository url: " + url.error()});
  const std::string name = url->full_name();
  if (auto v = validate(req); !v) {
    return tl::unexpected(Error{v.error().kind, "repo '" + name + "': " + v.error().message});
  }
  // Copy sources are read first, each under its own mirror's lock: holding a source's lock while
  // holding the target's could deadlock two promotions that copy from each other's repositories.
  std::vector<CopySource> copies;
  for (const Edit& e : req.edits) {
    if (const auto* copy = std::get_if<CopyEdit>(&e)) {
      auto source = read_copy_source(*copy, req.credentials);
      if (!source) return tl::unexpected(source.error());
      copies.push_back(std::move(*source));
    }
  }

  const auto mirror_path = options_.data_dir / "mirrors" / url->mirror_dir();
  // The branch's stripe first, then the mirror: always in this order.
  std::lock_guard branch_guard(
      branch_locks_[std::hash<std::string>{}(mirror_path.string() + '\n' + req.target_branch) % branch_locks_.size()]);
  auto lock = mirror_lock(mirror_path.string());
  // Held from the fetch to the commit; push_branch lets go of it while a smart-HTTP push is on the
  // wire (it writes nothing into the mirror) and takes it back before returning.
  std::unique_lock guard(*lock);

  const Remote remote{*url, req.url, req.credentials, options_, counters_, http_.get()};
  auto mirror = open_and_fetch(mirror_path, name, remote, req.base_branch, req.target_branch);
  if (!mirror) return tl::unexpected(mirror.error());
  auto* repo = &mirror->repo;
  const auto* heads = &mirror->heads;
  const ForgetBranch forget_target(repo->get(), req.target_branch);

  auto fail = [&](const char* what, int rc) {
    return tl::unexpected(Error{ErrorKind::other, "repo '" + name + "': " + what + ": " + lg::error_message(rc)});
  };
  git_commit* raw_commit = nullptr;
  if (int rc = git_commit_lookup(&raw_commit, repo->get(), &heads->base); rc < 0) return fail("base commit", rc);
  lg::Commit base(raw_commit);
  git_tree* raw_tree = nullptr;
  if (int rc = git_commit_tree(&raw_tree, base.get()); rc < 0) return fail("base tree", rc);
  lg::Tree base_tree(raw_tree);

  auto change = apply_edits(repo->get(), base_tree.get(), req.edits, copies, name);
  if (!change) return tl::unexpected(change.error());

  PromotionResult result;
  result.base_commit = lg::to_hex(heads->base);
  result.changed_files = change->changed_files;
  if (git_oid_equal(&change->tree, git_tree_id(base_tree.get())) != 0) {
    result.outcome = Outcome::unchanged;
    log::info("git promotion unchanged", {{"repo", name}, {"base", result.base_commit}});
    return result;
  }

  // A run resumed after a crash finds its own commit already pushed: same tree on the same base.
  if (heads->target) {
    git_commit* raw_existing = nullptr;
    if (git_commit_lookup(&raw_existing, repo->get(), &*heads->target) == 0) {
      lg::Commit existing(raw_existing);
      if (git_oid_equal(git_commit_tree_id(existing.get()), &change->tree) != 0 &&
          git_commit_parentcount(existing.get()) == 1 &&
          git_oid_equal(git_commit_parent_id(existing.get(), 0), &heads->base) != 0) {
        result.outcome = Outcome::up_to_date;
        result.commit = lg::to_hex(*heads->target);
        log::info("git promotion up to date", {{"repo", name}, {"branch", req.target_branch}, {"commit", result.commit}});
        return result;
      }
    }
  }

  git_signature* raw_sig = nullptr;
  if (int rc = git_signature_now(&raw_sig, req.author.name.c_str(), req.author.email.c_str()); rc < 0) {
    return tl::unexpected(Error{ErrorKind::invalid_request, "repo '" + name + "': author: " + lg::error_message(rc)});
  }
  lg::Signature author(raw_sig);
  if (int rc = git_signature_now(&raw_sig, req.committer.name.c_str(), req.committer.email.c_str()); rc < 0) {
    return tl::unexpected(Error{ErrorKind::invalid_request, "repo '" + name + "': committer: " + lg::error_message(rc)});
  }
  lg::Signature committer(raw_sig);
  if (int rc = git_tree_lookup(&raw_tree, repo->get(), &change->tree); rc < 0) return fail("new tree", rc);
  lg::Tree new_tree(raw_tree);
  git_oid commit_id{};
  const git_commit* parents[] = {base.get()};
  if (int rc = git_commit_create(&commit_id, repo->get(), nullptr, author.get(), committer.get(), nullptr,
                                 req.message.c_str(), new_tree.get(), 1, parents);
      rc < 0) {
    return fail("commit", rc);
  }
  git_reference* raw_ref = nullptr;
  const std::string target_ref = "refs/heads/" + req.target_branch;
  if (int rc = git_reference_create(&raw_ref, repo->get(), target_ref.c_str(), &commit_id, 1, "tollgate: promote");
      rc < 0) {
    return fail("target ref", rc);
  }
  lg::Reference ref(raw_ref);

  auto pushed = push_branch(repo->get(), remote, req.target_branch, commit_id, base_tree.get(), heads, &guard);
  if (!pushed) return tl::unexpected(pushed.error());
  result.outcome = Outcome::pushed;
  result.commit = lg::to_hex(commit_id);
  result.created_branch = !heads->target;
  return result;
}

}  // namespace tollgate::git
