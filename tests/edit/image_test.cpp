#include <catch2/catch.hpp>

#include <yaml-cpp/yaml.h>

#include "service/edit/edit.hpp"

using namespace tollgate::edit;

namespace {

struct ImageCase {
  const char* name;
  std::string input;
  std::string tag;
  std::string expected;
};

const char* const app = "ghcr.io/acme/payments";

std::vector<ImageCase> image_cases() {
  return {
      {"updates newTag in place", "resources:\n- deploy.yaml\nimages:\n- name: ghcr.io/acme/payments # app\n  newTag: v1.0.0 # set by tollgate\n",
       "v1.1.0",
       "resources:\n- deploy.yaml\nimages:\n- name: ghcr.io/acme/payments # app\n  newTag: v1.1.0 # set by tollgate\n"},
      {"keeps newTag's quotes", "images:\n  - name: other\n    newTag: \"2\"\n  - name: ghcr.io/acme/payments\n    newName: mirror/payments\n    newTag: 'v1'\n",
       "v2", "images:\n  - name: other\n    newTag: \"2\"\n  - name: ghcr.io/acme/payments\n    newName: mirror/payments\n    newTag: 'v2'\n"},
      {"quotes a tag that would read as a number", "images:\n- name: ghcr.io/acme/payments\n  newTag: v1\n", "1.10",
       "images:\n- name: ghcr.io/acme/payments\n  newTag: \"1.10\"\n"},
      {"adds newTag to an entry without one", "images:\n- name: ghcr.io/acme/payments\n  newName: mirror/payments\nreplicas: []\n",
       "v2", "images:\n- name: ghcr.io/acme/payments\n  newName: mirror/payments\n  newTag: v2\nreplicas: []\n"},
      {"sets a digest and drops the tag it overrides", "images:\n- name: ghcr.io/acme/payments\n  newTag: v1\n  newName: m/p\n",
       "sha256:0123abcd", "images:\n- name: ghcr.io/acme/payments\n  newName: m/p\n  digest: sha256:0123abcd\n"},
      {"sets a tag and drops the digest that would override it",
       "images:\n- name: ghcr.io/acme/payments\n  digest: sha256:0123\n  newTag: v1\n", "v2",
       "images:\n- name: ghcr.io/acme/payments\n  newTag: v2\n"},
      {"sets tag and digest together", "images:\n- name: ghcr.io/acme/payments\n  newTag: v1\n", "v2@sha256:beef",
       "images:\n- name: ghcr.io/acme/payments\n  newTag: v2\n  digest: sha256:beef\n"},
      {"appends a missing entry like the others", "images:\n  - name: other\n    newTag: v9\nnamespace: payments\n", "v1",
       "images:\n  - name: other\n    newTag: v9\n  - name: ghcr.io/acme/payments\n    newTag: v1\nnamespace: payments\n"},
      {"adds the images list in the file's list style", "resources:\n  - deploy.yaml # app\nnamespace: payments\n", "v1",
       "resources:\n  - deploy.yaml # app\nnamespace: payments\nimages:\n  - name: ghcr.io/acme/payments\n    newTag: v1\n"},
      {"adds the images list kustomize-style by default", "namespace: payments", "v1",
       "namespace: payments\nimages:\n- name: ghcr.io/acme/payments\n  newTag: v1"},
      {"fills an empty images key", "images:\nnamespace: x\n", "v1",
       "images:\n- name: ghcr.io/acme/payments\n  newTag: v1\nnamespace: x\n"},
      {"flow list of entries", "images: [{name: other, newTag: v9}, {name: ghcr.io/acme/payments, newTag: v1}]\n", "v2",
       "images: [{name: other, newTag: v9}, {name: ghcr.io/acme/payments, newTag: v2}]\n"},
      {"appends to a flow list", "images: [{name: other, newTag: v9}]\n", "v2",
       "images: [{name: other, newTag: v9}, {name: ghcr.io/acme/payments, newTag: v2}]\n"},
      {"appends to an empty flow list", "images: []\n", "v2", "images: [{name: ghcr.io/acme/payments, newTag: v2}]\n"},
      {"CRLF kustomization", "images:\r\n- name: ghcr.io/acme/payments\r\n  newTag: v1\r\n", "v2",
       "images:\r\n- name: ghcr.io/acme/payments\r\n  newTag: v2\r\n"},
      {"CRLF entry appended", "images:\r\n- name: other\r\n  newTag: v1\r\n", "v2",
       "images:\r\n- name: other\r\n  newTag: v1\r\n- name: ghcr.io/acme/payments\r\n  newTag: v2\r\n"},
      {"empty file", "", "v1", "images:\n- name: ghcr.io/acme/payments\n  newTag: v1\n"},
      {"entry opened by its digest", "images:\n- digest: sha256:1\n  name: ghcr.io/acme/payments\n", "v2",
       "images:\n- name: ghcr.io/acme/payments\n  newTag: v2\n"},
  };
}

}  // namespace

TEST_CASE("image sets an entry's newTag or digest and nothing else", "[edit][image]") {
  auto c = GENERATE(from_range(image_cases()));
  INFO(c.name);
  auto r = set_image(c.input, ImageEdit{app, c.tag});
  if (!r) FAIL(r.error().message);
  CHECK(r->text == c.expected);
  CHECK(r->changed);
  // kustomize's view: exactly one entry by that name, with the tag and digest asked for.
  YAML::Node doc = YAML::Load(r->text);
  int found = 0;
  for (const auto& entry : doc["images"]) {
    if (entry["name"].as<std::string>() != app) continue;
    ++found;
    std::string tag = c.tag, digest;
    if (auto at = tag.find('@'); at != std::string::npos) {
      digest = tag.substr(at + 1);
      tag.resize(at);
    } else if (tag.rfind("sha256:", 0) == 0) {
      digest = tag;
      tag.clear();
    }
    CHECK((entry["newTag"] ? entry["newTag"].as<std::string>() : "") == tag);
    CHECK((entry["digest"] ? entry["digest"].as<std::string>() : "") == digest);
  }
  CHECK(found == 1);
}

TEST_CASE("image that changes nothing returns the same bytes", "[edit][image]") {
  std::string k = "images:\n- name: ghcr.io/acme/payments\n  newTag: \"v1\" # pinned\n";
  auto r = set_image(k, ImageEdit{app, "v1"});
  REQUIRE(r.has_value());
  CHECK_FALSE(r->changed);
  CHECK(r->text == k);
}

TEST_CASE("image explains kustomizations it cannot edit", "[edit][image]") {
  auto [input, tag, message] = GENERATE(table<std::string, std::string, std::string>({
      {"images:\n- name: ghcr.io/acme/payments\n- name: ghcr.io/acme/payments\n", "v1",
       "image 'ghcr.io/acme/payments': 'images' has more than one entry named 'ghcr.io/acme/payments' (lines 2 and "
       "3); remove the duplicates"},
      {"images: {name: x}\n", "v1",
       "image 'ghcr.io/acme/payments': 'images' (line 1) is not a list; kustomize expects a list of entries with "
       "'name:'"},
      {"- a\n", "v1",
       "image 'ghcr.io/acme/payments': the kustomization is a list; it must be a mapping with an 'images:' list"},
      {"a: 1\n", "", "image 'ghcr.io/acme/payments': tag '' is neither a tag, a digest ('sha256:...') nor both "
                     "('v1@sha256:...')"},
      {"a: 1\n---\nb: 2\n", "v1", "image 'ghcr.io/acme/payments': the file holds 2 YAML documents; a kustomization is one"},
      // Found by fuzz_edit: a digest replaces the tag, and removing the first of two newTag keys
      // left the second in force (and removed it on the next run: not idempotent).
      {"images:\n- name: ghcr.io/acme/payments\n  newTag: v0\n  newTag: v1\n", "sha256:0123456789abcdef",
       "path 'images[0].newTag': key 'newTag' appears more than once in the entry (lines 3 and 4); remove the "
       "duplicates"},
  }));
  auto r = set_image(input, ImageEdit{app, tag});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message == message);
}
