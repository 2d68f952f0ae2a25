// The one translation unit that compiles Asio's implementation (BOOST_ASIO_SEPARATE_COMPILATION),
// including Asio's OpenSSL glue.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
