/* placeholder */ int mdm_server_placeholder_;
