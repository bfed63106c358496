#error "core/ is pure: it must not include Asio, Beast or OpenSSL (see core/meson.build)"
