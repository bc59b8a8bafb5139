# --version prints what 'version' prints, before or after a command, and exits 0.
$ --version
>~ ^mxpc-data-migration \d+\.\d+\.\d+$
>~ ^  libpq      15
!! .

~ test "$({bin} --version)" = "$({bin} version)"

$ -q --version
>~ ^mxpc-data-migration \d+\.\d+\.\d+$

$ backup --version
>~ ^mxpc-data-migration \d+\.\d+\.\d+$
!! .

# where https trusts certificates from
$ SSL_CERT_FILE=/etc/my-ca.pem version
>~ ^  CA bundle  SSL_CERT_FILE=/etc/my-ca\.pem$

$ SSL_CERT_FILE= SSL_CERT_DIR=/etc/my-certs version
>~ ^  CA bundle  SSL_CERT_DIR=/etc/my-certs$

# -V as --version
$ -V
>~ ^mxpc-data-migration \d+\.\d+\.\d+$
>~ ^  libpq      15

$ backup -V
>~ ^mxpc-data-migration \d+\.\d+\.\d+$
