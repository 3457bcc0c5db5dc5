/*
 * test_router.c: the route table's access rules and path matching
 * (src/server/router.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "server/router.h"

/* Every route declares who may call it: 0 is "undeclared" and a bug. */
static void test_every_route_declares_auth(void **state)
{
  int i;
  (void)state;
  assert_true(mdm_n_routes > 10);
  for(i = 0; i < mdm_n_routes; i++) {
    if(mdm_routes[i].auth == MDM_AUTH_UNDECLARED)
      fail_msg("route %s %s declares no access rule", mdm_routes[i].method,
               mdm_routes[i].pattern);
    assert_non_null(mdm_routes[i].handler);
  }
}

/* Only these are open without credentials. */
static void test_public_routes_are_few(void **state)
{
  static const char *const allowed[] = {"GET /healthz", "GET /readyz",
                                        "GET /metrics", "GET /v1/ca.pem",
                                        "GET /v1/crl.pem",
                                        "GET /v1/server-ca.pem",
                                        "POST /v1/enroll", NULL};
  int i;
  (void)state;
  for(i = 0; i < mdm_n_routes; i++) {
    char key[128];
    const char *const *a;
    int ok = 0;
    if(!(mdm_routes[i].auth & MDM_AUTH_PUBLIC))
      continue;
    snprintf(key, sizeof(key), "%s %s", mdm_routes[i].method,
             mdm_routes[i].pattern);
    for(a = allowed; *a; a++)
      if(!strcmp(*a, key))
        ok = 1;
    if(!ok)
      fail_msg("route %s is public but not in the allow-list", key);
    /* A public route has no other bits: "public" is not a role. */
    assert_int_equal(mdm_routes[i].auth, MDM_AUTH_PUBLIC);
  }
}

/* Device routes are for devices only; admin routes never admit devices. */
static void test_device_and_admin_routes_disjoint(void **state)
{
  int i;
  (void)state;
  for(i = 0; i < mdm_n_routes; i++) {
    const struct mdm_route *rt = &mdm_routes[i];
    /* The gateway's access check is asked with the device's credential:
     * the one device route outside /v1/agent/. */
    int is_device_route = !strncmp(rt->pattern, "/v1/agent/", 10) ||
                          !strcmp(rt->pattern, "/v1/access/check");
    if(is_device_route)
      assert_int_equal(rt->auth, MDM_AUTH_DEVICE);
    else if(rt->auth & MDM_AUTH_DEVICE)
      fail_msg("non-agent route %s admits devices", rt->pattern);
    if(!strcmp(rt->pattern, "/v1/tokens") ||
       !strcmp(rt->pattern, "/v1/tokens/{id}"))
      assert_int_equal(rt->auth, MDM_ROLE_OWNER);
    /* Auditors never write (the access what-if is a POST that writes
     * nothing: its body is the sign-in context). */
    if(strcmp(rt->method, "GET") && strcmp(rt->pattern, "/v1/access/evaluate"))
      assert_false(rt->auth & MDM_ROLE_AUDITOR);
  }
}

static void test_match(void **state)
{
  struct mdm_req r;
  const struct mdm_route *rt = NULL;
  (void)state;
  memset(&r, 0, sizeof(r));
  assert_int_equal(mdm_route_match("GET", "/v1/devices", &r, &rt), MDM_OK);
  assert_string_equal(rt->pattern, "/v1/devices");
  assert_int_equal(r.n_params, 0);

  assert_int_equal(mdm_route_match("GET", "/v1/devices/abc-1", &r, &rt),
                   MDM_OK);
  assert_string_equal(rt->pattern, "/v1/devices/{id}");
  assert_int_equal(r.n_params, 1);
  assert_string_equal(r.params[0], "abc-1");

  assert_int_equal(mdm_route_match("PATCH", "/v1/devices/x", &r, &rt),
                   MDM_OK);
  assert_string_equal(rt->method, "PATCH");

  assert_int_equal(mdm_route_match("PUT", "/v1/devices/x", &r, &rt),
                   MDM_ERR_METHOD);
  assert_int_equal(mdm_route_match("GET", "/v1/devices/x/y", &r, &rt),
                   MDM_ERR_NOTFOUND);
  assert_int_equal(mdm_route_match("GET", "/v1/devices/", &r, &rt),
                   MDM_ERR_NOTFOUND);
  assert_int_equal(mdm_route_match("GET", "/v1/device", &r, &rt),
                   MDM_ERR_NOTFOUND);
  assert_int_equal(mdm_route_match("GET", "/", &r, &rt), MDM_ERR_NOTFOUND);
  assert_int_equal(mdm_route_match("GET", "", &r, &rt), MDM_ERR_NOTFOUND);
  assert_int_equal(mdm_route_match("GET", "/v1/audit/verify", &r, &rt),
                   MDM_OK);
  assert_string_equal(rt->pattern, "/v1/audit/verify");
}

static void test_param_too_long(void **state)
{
  struct mdm_req r;
  const struct mdm_route *rt = NULL;
  char path[400];
  (void)state;
  memset(&r, 0, sizeof(r));
  memset(path, 'a', sizeof(path) - 1);
  path[sizeof(path) - 1] = '\0';
  memcpy(path, "/v1/devices/", 12);
  assert_int_equal(mdm_route_match("GET", path, &r, &rt), MDM_ERR_NOTFOUND);
}

/* Commands (docs/api.md): the route admits the roles that may create some
 * command (the handler checks the type); retire is for owner, admin,
 * operator; reading is for everyone; the agent's side for devices. */
static void test_command_routes(void **state)
{
  static const struct {
    const char *method, *path;
    unsigned auth;
  } want[] = {
    {"POST", "/v1/devices/{id}/commands",
     MDM_ROLE_OWNER | MDM_ROLE_ADMIN | MDM_ROLE_OPERATOR | MDM_ROLE_HELPDESK},
    {"POST", "/v1/commands",
     MDM_ROLE_OWNER | MDM_ROLE_ADMIN | MDM_ROLE_OPERATOR | MDM_ROLE_HELPDESK},
    {"POST", "/v1/commands/{id}/cancel",
     MDM_ROLE_OWNER | MDM_ROLE_ADMIN | MDM_ROLE_OPERATOR | MDM_ROLE_HELPDESK},
    {"POST", "/v1/devices/{id}/retire",
     MDM_ROLE_OWNER | MDM_ROLE_ADMIN | MDM_ROLE_OPERATOR},
    {"GET", "/v1/devices/{id}/commands", MDM_ROLES_ALL},
    {"GET", "/v1/commands/{id}", MDM_ROLES_ALL},
    {"GET", "/v1/agent/commands", MDM_AUTH_DEVICE},
    {"POST", "/v1/agent/commands/{id}/result", MDM_AUTH_DEVICE},
  };
  struct mdm_req r;
  const struct mdm_route *rt = NULL;
  size_t i;
  int j, found;
  (void)state;
  for(i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    found = 0;
    for(j = 0; j < mdm_n_routes; j++)
      if(!strcmp(mdm_routes[j].method, want[i].method) &&
         !strcmp(mdm_routes[j].pattern, want[i].path)) {
        assert_int_equal(mdm_routes[j].auth, want[i].auth);
        found = 1;
      }
    if(!found)
      fail_msg("no route %s %s", want[i].method, want[i].path);
  }
  memset(&r, 0, sizeof(r));
  assert_int_equal(mdm_route_match("POST", "/v1/commands/abc/cancel", &r,
                                   &rt), MDM_OK);
  assert_string_equal(rt->pattern, "/v1/commands/{id}/cancel");
  assert_string_equal(r.params[0], "abc");
  assert_int_equal(mdm_route_match("POST", "/v1/agent/commands/c1/result", &r,
                                   &rt), MDM_OK);
  assert_string_equal(r.params[0], "c1");
  assert_int_equal(mdm_route_match("GET", "/v1/commands/abc/cancel", &r, &rt),
                   MDM_ERR_METHOD);
}

static void test_roles(void **state)
{
  (void)state;
  assert_int_equal(mdm_role_bit("owner"), MDM_ROLE_OWNER);
  assert_int_equal(mdm_role_bit("admin"), MDM_ROLE_ADMIN);
  assert_int_equal(mdm_role_bit("operator"), MDM_ROLE_OPERATOR);
  assert_int_equal(mdm_role_bit("helpdesk"), MDM_ROLE_HELPDESK);
  assert_int_equal(mdm_role_bit("auditor"), MDM_ROLE_AUDITOR);
  assert_int_equal(mdm_role_bit("root"), 0);
  assert_int_equal(mdm_role_bit("Owner"), 0);
  assert_int_equal(mdm_role_bit(""), 0);
  assert_int_equal(mdm_role_bit(NULL), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_route_declares_auth),
    cmocka_unit_test(test_public_routes_are_few),
    cmocka_unit_test(test_device_and_admin_routes_disjoint),
    cmocka_unit_test(test_match),
    cmocka_unit_test(test_param_too_long),
    cmocka_unit_test(test_command_routes),
    cmocka_unit_test(test_roles),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
