#include "service/engine_inputs.hpp"

#include <type_traits>

#include "webhooks/json_reader.hpp"

namespace tollgate::service {

namespace {

// Logins are case-insensitive on every host; an empty login is nobody.
bool same_login(std::string_view a, std::string_view b) { return !a.empty() && webhooks::detail::iequals(a, b); }

pipeline::ActorFacts actor(const webhooks::Actor& a) {
  pipeline::ActorFacts f;
  f.login = a.login;
  f.bot = a.bot;
  return f;
}

}  // namespace

pipeline::CheckState check_state(webhooks::StatusEvent::State state) {
  using S = webhooks::StatusEvent::State;
  switch (state) {
    case S::pending: return pipeline::CheckState::pending;
    case S::success:
    case S::skipped:
    case S::neutral: return pipeline::CheckState::success;
    case S::failure:
    case S::error:
    case S::cancelled: return pipeline::CheckState::failure;
  }
  return pipeline::CheckState::pending;
}

EngineEvent translate(const webhooks::Event& event, std::string_view bot_login) {
  EngineEvent out;
  const std::string& repo = event.repo;
  std::visit(
      [&](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, webhooks::PullRequestEvent>) {
          using A = webhooks::PullRequestEvent::Action;
          switch (e.action) {
            case A::merged: {
              // The PR event carries no file list: a `paths:` filter asks the host for it.
              SourceTrigger t{repo, e.merge_sha, e.pr.number,
                              {pipeline::TriggerEvent::Kind::merged, e.pr.base_ref, {}, /*complete=*/false}};
              out.trigger = std::move(t);
              out.inputs.emplace_back(
                  pipeline::PrMerged{repo, e.pr.number, e.merge_sha, e.sender.login, same_login(e.sender.login, bot_login)});
              break;
            }
            case A::closed_unmerged:
              out.inputs.emplace_back(pipeline::PrClosed{repo, e.pr.number, e.sender.login});
              break;
            case A::head_changed:
              out.inputs.emplace_back(pipeline::HeadChanged{repo, e.pr.number, e.pr.head_sha});
              break;
            case A::opened:
              break;  // tollgate opens promotion PRs itself; others are not its business
          }
        } else if constexpr (std::is_same_v<T, webhooks::CommentEvent>) {
          if (e.author.bot || same_login(e.author.login, bot_login)) return;
          out.inputs.emplace_back(pipeline::CommentCreated{repo, e.pr.number, e.comment_id, actor(e.author), e.body});
          out.needs_actor_facts = true;
        } else if constexpr (std::is_same_v<T, webhooks::ReviewEvent>) {
          using S = webhooks::ReviewEvent::State;
          using K = pipeline::ReviewSubmitted::Kind;
          if (e.author.bot || same_login(e.author.login, bot_login)) return;
          std::optional<K> kind;
          if (e.state == S::approved) kind = K::approved;
          if (e.state == S::dismissed) kind = K::dismissed;
          if (e.state == S::changes_requested) kind = K::changes_requested;
          if (!kind) return;  // a plain review comment neither approves nor withdraws
          out.inputs.emplace_back(pipeline::ReviewSubmitted{*kind, repo, e.pr.number, e.review_id, actor(e.author), e.commit_sha});
          out.needs_actor_facts = true;
        } else if constexpr (std::is_same_v<T, webhooks::StatusEvent>) {
          out.inputs.emplace_back(pipeline::CheckCompleted{repo, e.sha, e.name, check_state(e.state)});
        } else if constexpr (std::is_same_v<T, webhooks::PushEvent>) {
          auto branch = pipeline::branch_of_ref(e.ref);
          const bool deleted = e.after.find_first_not_of('0') == std::string::npos;  // all zeros (or empty)
          if (!branch || deleted) return;
          out.trigger = SourceTrigger{repo, e.after, 0,
                                      {pipeline::TriggerEvent::Kind::push, *branch, e.changed_files, e.changed_files_complete}};
        }
      },
      event.payload);
  return out;
}

}  // namespace tollgate::service
