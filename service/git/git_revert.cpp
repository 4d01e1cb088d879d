// GitWriter::revert: a commit on top of the base tip that undoes one commit of the base branch
// (the merge of a promotion PR), built in memory in the bare mirror with git_revert_commit and
// pushed to a deterministic branch. Re-running it after a crash pushes nothing when the branch
// already holds the same tree on the same base ("up to date"), like promote().
#include <git2.h>

#include "service/git/git_writer.hpp"
#include "service/git/libgit2.hpp"
#include "service/git/remote_ops.hpp"
#include "service/git/repo_url.hpp"
#include "service/host/http_client.hpp"
#include "service/log.hpp"

namespace tollgate::git {
namespace log = tollgate::service::log;
namespace {

using Index = lg::Owned<git_index, git_index_free>;
using Odb = lg::Owned<git_odb, git_odb_free>;

Odb odb_of(git_repository* repo) {
  git_odb* raw = nullptr;
  if (git_repository_odb(&raw, repo) < 0) return Odb{};
  return Odb(raw);
}

bool valid_branch(const std::string& b) {
  int valid = 0;
  return !b.empty() && git_reference_name_is_valid(&valid, ("refs/heads/" + b).c_str()) == 0 && valid != 0;
}

}  // namespace

tl::expected<RevertResult, Error> GitWriter::revert(const RevertRequest& req) {
  lg::init_once();
  auto url = parse_repo_url(req.url);
  if (!url) return tl::unexpected(Error{ErrorKind::invalid_request, "invalid repository url: " + url.error()});
  const std::string name = url->full_name();
  auto invalid = [&](const std::string& why) {
    return tl::unexpected(Error{ErrorKind::invalid_request, "repo '" + name + "': " + why});
  };
  if (!valid_branch(req.base_branch)) return invalid("invalid base branch '" + req.base_branch + "'");
  if (!valid_branch(req.target_branch) || req.target_branch == req.base_branch)
    return invalid("invalid target branch '" + req.target_branch + "'");
  if (req.message.empty()) return invalid("empty commit message");
  git_oid reverted_id{};
  if (req.commit.size() != GIT_OID_HEXSZ || git_oid_fromstr(&reverted_id, req.commit.c_str()) < 0)
    return invalid("invalid commit to revert '" + req.commit + "'");

  const auto mirror_path = options_.data_dir / "mirrors" / url->mirror_dir();
  auto lock = mirror_lock(mirror_path.string());
  std::lock_guard guard(*lock);

  const Remote remote{*url, req.url, req.credentials, options_, counters_, http_.get()};
  auto mirror = open_and_fetch(mirror_path, name, remote, req.base_branch, req.target_branch);
  if (!mirror) return tl::unexpected(mirror.error());
  auto* repo = &mirror->repo;
  const auto* heads = &mirror->heads;
  const ForgetBranch forget_target(repo->get(), req.target_branch);

  auto fail = [&](const char* what, int rc) {
    return tl::unexpected(Error{ErrorKind::other, "repo '" + name + "': " + what + ": " + lg::error_message(rc)});
  };
  git_commit* raw = nullptr;
  if (int rc = git_commit_lookup(&raw, repo->get(), &heads->base); rc < 0) return fail("base commit", rc);
  lg::Commit base(raw);
  git_tree* raw_tree = nullptr;
  if (int rc = git_commit_tree(&raw_tree, base.get()); rc < 0) return fail("base tree", rc);
  lg::Tree base_tree(raw_tree);

  // Only the base branch was fetched: a commit that is not on it is not in the mirror either
  // (or is there from an older fetch, and then must still be an ancestor of the base tip).
  const Odb odb = odb_of(repo->get());
  const bool on_base = git_oid_equal(&reverted_id, &heads->base) != 0 ||
                       (odb && git_odb_exists(odb.get(), &reverted_id) != 0 &&
                        git_graph_descendant_of(repo->get(), &heads->base, &reverted_id) == 1);
  if (!on_base) {
    return tl::unexpected(Error{ErrorKind::not_found, "repo '" + name + "': commit '" + req.commit +
                                                          "' is not on branch '" + req.base_branch + "'"});
  }
  if (int rc = git_commit_lookup(&raw, repo->get(), &reverted_id); rc < 0) return fail("commit to revert", rc);
  lg::Commit reverted(raw);
  if (git_commit_parentcount(reverted.get()) == 0) return invalid("cannot revert the root commit '" + req.commit + "'");

  // A merge commit is reverted against its first parent (the base branch before the merge).
  const unsigned mainline = git_commit_parentcount(reverted.get()) > 1 ? 1 : 0;
  git_merge_options merge_options = GIT_MERGE_OPTIONS_INIT;
  git_index* raw_index = nullptr;
  if (int rc = git_revert_commit(&raw_index, repo->get(), reverted.get(), base.get(), mainline, &merge_options); rc < 0)
    return fail("revert", rc);
  Index index(raw_index);
  if (git_index_has_conflicts(index.get()) != 0) {
    return tl::unexpected(Error{ErrorKind::edit_failed, "repo '" + name + "': reverting '" + req.commit.substr(0, 12) +
                                                            "' conflicts with later changes on '" + req.base_branch + "'"});
  }
  git_oid tree_id{};
  if (int rc = git_index_write_tree_to(&tree_id, index.get(), repo->get()); rc < 0) return fail("revert tree", rc);

  RevertResult result;
  result.base_commit = lg::to_hex(heads->base);
  if (git_oid_equal(&tree_id, git_tree_id(base_tree.get())) != 0) {
    result.outcome = Outcome::unchanged;
    log::info("git revert unchanged", {{"repo", name}, {"base", result.base_commit}});
    return result;
  }
  if (heads->target) {
    git_commit* raw_existing = nullptr;
    if (git_commit_lookup(&raw_existing, repo->get(), &*heads->target) == 0) {
      lg::Commit existing(raw_existing);
      if (git_oid_equal(git_commit_tree_id(existing.get()), &tree_id) != 0 && git_commit_parentcount(existing.get()) == 1 &&
          git_oid_equal(git_commit_parent_id(existing.get(), 0), &heads->base) != 0) {
        result.outcome = Outcome::up_to_date;
        result.commit = lg::to_hex(*heads->target);
        return result;
      }
    }
  }

  git_signature* raw_sig = nullptr;
  if (int rc = git_signature_now(&raw_sig, req.author.name.c_str(), req.author.email.c_str()); rc < 0)
    return invalid("author: " + lg::error_message(rc));
  lg::Signature author(raw_sig);
  if (int rc = git_signature_now(&raw_sig, req.committer.name.c_str(), req.committer.email.c_str()); rc < 0)
    return invalid("committer: " + lg::error_message(rc));
  lg::Signature committer(raw_sig);
  if (int rc = git_tree_lookup(&raw_tree, repo->get(), &tree_id); rc < 0) return fail("revert tree", rc);
  lg::Tree new_tree(raw_tree);
  git_oid commit_id{};
  const git_commit* parents[] = {base.get()};
  if (int rc = git_commit_create(&commit_id, repo->get(), nullptr, author.get(), committer.get(), nullptr,
                                 req.message.c_str(), new_tree.get(), 1, parents);
      rc < 0)
    return fail("commit", rc);
  git_reference* raw_ref = nullptr;
  const std::string target_ref = "refs/heads/" + req.target_branch;
  if (int rc = git_reference_create(&raw_ref, repo->get(), target_ref.c_str(), &commit_id, 1, "tollgate: revert"); rc < 0)
    return fail("target ref", rc);
  lg::Reference ref(raw_ref);

  auto pushed = push_branch(repo->get(), remote, req.target_branch, commit_id, base_tree.get(), heads);
  if (!pushed) return tl::unexpected(pushed.error());
  result.outcome = Outcome::pushed;
  result.commit = lg::to_hex(commit_id);
  log::info("git revert pushed", {{"repo", name}, {"branch", req.target_branch}, {"commit", result.commit}});
  return result;
}

}  // namespace tollgate::git
