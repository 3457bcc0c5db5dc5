/* placeholder */ int mdm_store_placeholder_;
