// Normalised webhook Events -> what the engine and the triggers get (service/engine_inputs).
// The first cases go through the real fixtures (GitHub's own example payloads, derived as
// tests/fixtures/webhooks/github/README.md says) and webhooks::normalize.
#include <cctype>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../webhooks/helpers.hpp"
#include "service/engine_inputs.hpp"

using namespace tollgate;
using service::translate;

namespace {

webhooks::Event normalized(std::string_view event_type, std::string_view fixture) {
  auto e = webhooks::normalize(webhooks::HostKind::github, event_type, webhooks::test::fixture("github", fixture));
  REQUIRE(e);
  REQUIRE(e->has_value());
  return **e;
}

}  // namespace

TEST_CASE("a merged PR: a merged trigger at the merge commit, and PrMerged for promotion runs", "[engine_inputs]") {
  auto ev = normalized("pull_request", "pull_request.closed.merged.json");
  auto out = translate(ev, "tollgate-bot");
  REQUIRE(out.trigger);
  const auto& pr = std::get<webhooks::PullRequestEvent>(ev.payload);
  CHECK(out.trigger->repo == ev.repo);
  CHECK(out.trigger->sha == pr.merge_sha);
  CHECK_FALSE(out.trigger->sha.empty());
  CHECK(out.trigger->pr == pr.pr.number);
  CHECK(out.trigger->event.kind == pipeline::TriggerEvent::Kind::merged);
  CHECK(out.trigger->event.branch == pr.pr.base_ref);
  CHECK_FALSE(out.trigger->event.changed_files_complete);  // the PR's files come from the host
  REQUIRE(out.inputs.size() == 1);
  const auto& merged = std::get<pipeline::PrMerged>(out.inputs[0]);
  CHECK(merged.repo == ev.repo);
  CHECK(merged.pr == pr.pr.number);
  CHECK(merged.merge_sha == pr.merge_sha);
  CHECK(merged.by == pr.sender.login);
  CHECK_FALSE(merged.by_tollgate);
  CHECK_FALSE(out.needs_actor_facts);

  // The same merge made by tollgate's own account (any letter case) is tollgate's.
  std::string upper = pr.sender.login;
  for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  REQUIRE_FALSE(upper.empty());
  CHECK(std::get<pipeline::PrMerged>(translate(ev, upper).inputs.at(0)).by_tollgate);
}

TEST_CASE("a comment and an approving review need the author's permission before the engine sees them", "[engine_inputs]") {
  auto comment = normalized("issue_comment", "issue_comment.created.on_pull_request.json");
  auto out = translate(comment, "tollgate-bot");
  CHECK_FALSE(out.trigger);
  CHECK(out.needs_actor_facts);
  REQUIRE(out.inputs.size() == 1);
  const auto& c = std::get<pipeline::CommentCreated>(out.inputs[0]);
  const auto& src = std::get<webhooks::CommentEvent>(comment.payload);
  CHECK(c.pr == src.pr.number);
  CHECK(c.comment_id == src.comment_id);
  CHECK(c.body == src.body);
  CHECK(c.author.login == src.author.login);
  CHECK(c.author.permission == pipeline::ActorFacts::Permission::none);  // to be filled in

  auto review = normalized("pull_request_review", "pull_request_review.submitted.approved.json");
  out = translate(review, "tollgate-bot");
  REQUIRE(out.inputs.size() == 1);
  const auto& r = std::get<pipeline::ReviewSubmitted>(out.inputs[0]);
  CHECK(r.kind == pipeline::ReviewSubmitted::Kind::approved);
  CHECK(r.review_id == std::get<webhooks::ReviewEvent>(review.payload).review_id);
  CHECK(out.needs_actor_facts);
}

TEST_CASE("bots and tollgate itself are not heard; plain review comments change nothing", "[engine_inputs]") {
  webhooks::Event e;
  e.repo = "acme/env-dev";
  webhooks::CommentEvent c;
  c.pr.number = 7;
  c.comment_id = 99;
  c.body = "/approve";
  c.author = {"renovate[bot]", true};
  e.payload = c;
  CHECK(translate(e, "tollgate-bot").inputs.empty());
  c.author = {"Tollgate-Bot", false};
  e.payload = c;
  CHECK(translate(e, "tollgate-bot").inputs.empty());

  webhooks::ReviewEvent r;
  r.pr.number = 7;
  r.author = {"alice", false};
  r.state = webhooks::ReviewEvent::State::commented;
  e.payload = r;
  CHECK(translate(e, "tollgate-bot").inputs.empty());
  r.state = webhooks::ReviewEvent::State::dismissed;
  e.payload = r;
  REQUIRE(translate(e, "tollgate-bot").inputs.size() == 1);
  CHECK(std::get<pipeline::ReviewSubmitted>(translate(e, "tollgate-bot").inputs[0]).kind ==
        pipeline::ReviewSubmitted::Kind::dismissed);
}

TEST_CASE("PR closed, head changed, statuses and pushes", "[engine_inputs]") {
  webhooks::Event e;
  e.repo = "acme/env-qa";
  webhooks::PullRequestEvent pr;
  pr.pr.number = 12;
  pr.pr.head_sha = "abc123";
  pr.sender = {"bob", false};
  pr.action = webhooks::PullRequestEvent::Action::closed_unmerged;
  e.payload = pr;
  auto out = translate(e, "tollgate");
  CHECK_FALSE(out.trigger);
  REQUIRE(out.inputs.size() == 1);
  CHECK(std::get<pipeline::PrClosed>(out.inputs[0]).by == "bob");

  pr.action = webhooks::PullRequestEvent::Action::head_changed;
  e.payload = pr;
  CHECK(std::get<pipeline::HeadChanged>(translate(e, "tollgate").inputs.at(0)).sha == "abc123");
  pr.action = webhooks::PullRequestEvent::Action::opened;
  e.payload = pr;
  CHECK(translate(e, "tollgate").inputs.empty());

  using S = webhooks::StatusEvent::State;
  using C = pipeline::CheckState;
  for (auto [in, want] : std::vector<std::pair<S, C>>{{S::pending, C::pending},   {S::success, C::success},
                                                      {S::skipped, C::success},   {S::neutral, C::success},
                                                      {S::failure, C::failure},   {S::error, C::failure},
                                                      {S::cancelled, C::failure}}) {
    webhooks::StatusEvent st;
    st.sha = "def456";
    st.name = "ci/build";
    st.state = in;
    e.payload = st;
    const auto translated = translate(e, "tollgate");
    const auto& check = std::get<pipeline::CheckCompleted>(translated.inputs.at(0));
    CHECK(check.state == want);
    CHECK(check.sha == "def456");
    CHECK(check.name == "ci/build");
  }

  webhooks::PushEvent push;
  push.ref = "refs/heads/release/2";
  push.after = "0123456789abcdef0123456789abcdef01234567";
  push.changed_files = {"a.go"};
  push.changed_files_complete = false;
  e.payload = push;
  out = translate(e, "tollgate");
  REQUIRE(out.trigger);
  CHECK(out.trigger->sha == push.after);
  CHECK(out.trigger->event.kind == pipeline::TriggerEvent::Kind::push);
  CHECK(out.trigger->event.branch == "release/2");
  CHECK(out.trigger->event.changed_files == std::vector<std::string>{"a.go"});
  CHECK_FALSE(out.trigger->event.changed_files_complete);
  CHECK(out.inputs.empty());

  push.after = std::string(40, '0');  // a deleted branch starts nothing
  e.payload = push;
  CHECK_FALSE(translate(e, "tollgate").trigger);
  push.after = "0123456789abcdef0123456789abcdef01234567";
  push.ref = "refs/tags/v1";  // nor does a tag
  e.payload = push;
  CHECK_FALSE(translate(e, "tollgate").trigger);
}
