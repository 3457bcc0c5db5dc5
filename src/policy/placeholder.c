/* placeholder: src/policy is being written */
int mdm_policy_placeholder_;
